"""What a landmark network would cost before training it: each design's int8 graph timed at random weights.

    python benchmarks/landmark_variants.py [--repeats 200]

Issue 12 asks for more accuracy at no cost in speed: the landmark step must
stay as fast as dlib's shape predictor, and the shipped default is already at
about dlib's time (``speed.md``). So capacity can only grow where it is free.
Time does not depend on the weights, so each variant of the shipped default's
network (``checkpoints/default.pt``'s architecture) is exported as ``facepoints
export --int8`` does (the runtime's graph, static int8 with the stem and head
float, 7-bit weights; its ranges set on random crops, which moves no kernel)
and run by onnxruntime at batch 1, 1 thread, the graphs taking turns block by
block. The shipped ``default.onnx`` is measured in the same run as the
reference. Writes benchmarks/results/landmark_variants.{md,json}. Whether a
variant is more accurate is a training run and the held-out rule
(``landmark_candidates/README.md``), not this table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from provenance import provenance, save_results  # noqa: E402
from speed import interleaved_best_ms  # noqa: E402

from facepoints.checkpoint import load_scheme_dict, read_checkpoint  # noqa: E402
from facepoints.detectors.base import onnx_session  # noqa: E402
from facepoints.export import export_graph, quantize_onnx  # noqa: E402
from facepoints.models import build_model  # noqa: E402

SHIPPED = ROOT / "facepoints" / "weights" / "default.onnx"
# name -> changes to the shipped network's kwargs (input_size is the crop side). onnxruntime's AVX-512 kernels
# work in blocks of 16 channels, so a 24-channel stage may cost what a 32-channel one does.
VARIANTS: dict[str, dict] = {
    "shipped design": {},
    "stem 32 wide": {"widths": [32, 32, 64, 128, 192]},
    "first stage 48 wide": {"widths": [24, 48, 64, 128, 192]},
    "third stage 160 wide": {"widths": [24, 32, 64, 160, 192]},
    "last stage 256 wide": {"widths": [24, 32, 64, 128, 256]},
    "last stage 4 blocks": {"depths": [1, 2, 3, 4]},
    "decoder 96": {"decoder": 96},
    "heatmaps at stride 2": {"heatmap_stride": 2},
    "112 px input": {"input_size": 112},
}


def variant_files(tmp: Path, rng: np.random.Generator) -> tuple[list[dict], list[Path]]:
    """Each variant's int8 graph, built from the shipped checkpoint's architecture with random weights."""
    import torch

    ck = read_checkpoint(ROOT / "checkpoints" / "default.pt")
    norm, base = ck["normalisation"], dict(ck["model_kwargs"])
    points = load_scheme_dict(ck["scheme"]).num_points
    rows, files = [], []
    for k, (name, change) in enumerate(VARIANTS.items()):
        kwargs = base | {key: v for key, v in change.items() if key != "input_size"}
        size = int(change.get("input_size", norm["input_size"]))
        torch.manual_seed(0)
        model = build_model(ck["model_name"], points, size, norm["channels"], **kwargs).eval()
        fp32 = export_graph(model, tmp / f"v{k}_fp32.onnx", norm["channels"], size)
        crops = rng.random((20, norm["channels"], size, size), dtype=np.float32)
        files.append(quantize_onnx(fp32, tmp / f"v{k}.onnx", crops))
        rows.append({"variant": name, "change": change, "input_size": size,
                     "parameters": sum(p.numel() for p in model.parameters())})
    return rows, files


def step_ms(files: list[Path], sizes: list[int], channels: int, repeats: int, rounds: int = 9) -> list[float]:
    """Batch-1 network ms per graph: each graph's best block of ``repeats`` calls over ``rounds`` turns."""
    sessions = [onnx_session(f, threads=1) for f in files]
    xs = [np.random.default_rng(s).random((1, channels, s, s), dtype=np.float32) for s in sizes]
    runs = [lambda s=s, x=x: s.run(["points", "scores"], {"image": x}) for s, x in zip(sessions, xs)]
    return interleaved_best_ms(runs, repeats, rounds, warmup=20).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # torch's exporter and onnxruntime's quantiser warn about themselves
    norm = read_checkpoint(ROOT / "checkpoints" / "default.pt")["normalisation"]
    with tempfile.TemporaryDirectory() as tmp:
        rows, files = variant_files(Path(tmp), np.random.default_rng(0))
        rows = [{"variant": "shipped default.onnx", "change": None, "input_size": int(norm["input_size"]),
                 "parameters": None}, *rows]
        times = step_ms([SHIPPED, *files], [r["input_size"] for r in rows], int(norm["channels"]), args.repeats)
    for row, ms in zip(rows, times):
        row["ms"] = ms
    write(rows, provenance(f"python benchmarks/landmark_variants.py --repeats {args.repeats}"))


def write(rows: list[dict], prov: dict) -> None:
    out = ROOT / "benchmarks" / "results" / "landmark_variants"
    ref = rows[0]["ms"]
    lines = ["The landmark network alone, int8 as shipped (float stem and head, 7-bit weights), batch 1, "
             "onnxruntime, 1 thread; random weights, since time does not depend on them. The first row is the "
             "shipped file, the second the same design rebuilt here: their gap is what the random-weights proxy "
             "costs.", "", "| variant | input | parameters | ms | vs shipped |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['variant']} | {r['input_size']} | {r['parameters'] or ''} | {r['ms']:.3f} | "
              f"{r['ms'] / ref:.2f}x |" for r in rows]
    save_results(out, prov, rows, "Landmark network designs: time before training", lines)


if __name__ == "__main__":
    main()
