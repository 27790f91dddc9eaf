"""What a detector network would cost before training it: each design's ONNX graph timed at random weights.

    python benchmarks/detector_variants.py [--repeats 10]

Time does not depend on the weights, so a design's speed can be measured
before spending the hour its training takes. Each variant of the five-point
detector's network (``configs/detector_points.yaml``, shipped until session 36;
the lean design that replaced it is one of the variants) is exported exactly as
``facepoints export-detector`` does and run by onnxruntime (1 thread) on the
four pyramid levels of a 640x480 photo (640x480, 320x256, 160x128, 96x64
after padding to stride 32): one look, each level's best block of 7, the
graphs taking turns. The shipped detector's own graph is measured in the same
run as the reference.
Writes benchmarks/results/detector_variants.{md,json}. Whether a variant
finds faces as well is a training run and the held-out rule
(``benchmarks/detector_candidates.py``), not this table.
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

from facepoints.config import from_dict, to_dict  # noqa: E402
from facepoints.detector_export import _onnx_export  # noqa: E402
from facepoints.detector_model import DetectorNetConfig, FaceDetectorNet, count_parameters  # noqa: E402
from facepoints.detector_train import load_detector_config  # noqa: E402
from facepoints.detectors.base import onnx_session  # noqa: E402
from facepoints.detectors.cnn import default_model_path, output_names  # noqa: E402

LEVELS = ((480, 640), (256, 320), (128, 160), (64, 96))
# name -> changes to the five-point network's config; channel counts that are multiples of 16 fill onnxruntime's
# AVX-512 blocks (NCHWc), so 24 and 40 channels cost about what 32 and 48 do
VARIANTS: dict[str, dict] = {
    "five-point design (detector_points.yaml)": {},
    "neck 32": {"neck": 32},
    "neck 32, head 1": {"neck": 32, "head_depth": 1},
    "widths 32-48-80-128, neck 32": {"widths": [32, 48, 80, 128], "neck": 32},
    "widths 32-48-80-128, neck 32, 2x2 stem (detector_lean.yaml)": {"widths": [32, 48, 80, 128], "neck": 32,
                                                                     "stem_kernel": 2},
    "widths 32-48-80-128, neck 32, head 1, 2x2 stem": {"widths": [32, 48, 80, 128], "neck": 32, "head_depth": 1,
                                                       "stem_kernel": 2},
    "widths 16-32-80-128, neck 32, head 1, 2x2 stem": {"widths": [16, 32, 80, 128], "neck": 32, "head_depth": 1,
                                                       "stem_kernel": 2},
}


def base_config() -> dict:
    return to_dict(load_detector_config(ROOT / "configs" / "detector_points.yaml").model)


def look_ms(onnx_files: list[Path], repeats: int, rounds: int = 7) -> list[float]:
    """One look at the four levels per graph, ms: each level's best block, the graphs taking turns block by block,
    so that a slower stretch of the machine falls on all of them."""
    sessions = [onnx_session(f, threads=1) for f in onnx_files]
    inputs = [np.random.default_rng(h).random((1, 3, h, w), dtype=np.float32) * 255 for h, w in LEVELS]
    names = output_names(True)
    runs = [lambda s=s, x=x: s.run(names, {"image": x}) for s in sessions for x in inputs]
    best = interleaved_best_ms(runs, repeats, rounds, warmup=3)
    return best.reshape(len(sessions), len(inputs)).sum(axis=1).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    import torch

    torch.manual_seed(0)
    warnings.filterwarnings("ignore")  # torch's exporter warns about its own deprecation
    rows = [{"variant": "shipped detector.onnx", "parameters": None}]
    with tempfile.TemporaryDirectory() as tmp:
        files = [default_model_path()]
        for k, (name, change) in enumerate(VARIANTS.items()):
            net = FaceDetectorNet(from_dict(DetectorNetConfig, base_config() | change)).eval()
            files.append(Path(tmp) / f"variant{k}.onnx")
            _onnx_export(net, files[-1])
            rows.append({"variant": name, "config": change, "parameters": count_parameters(net)})
        for row, ms in zip(rows, look_ms(files, args.repeats)):
            row["ms"] = ms
    write(rows, provenance(f"python benchmarks/detector_variants.py --repeats {args.repeats}"))


def write(rows: list[dict], prov: dict) -> None:
    out = ROOT / "benchmarks" / "results" / "detector_variants"
    ref, base = rows[0]["ms"], rows[1]["ms"]
    lines = ["One look (the four pyramid levels of a 640x480 photo), onnxruntime, 1 thread; random weights, "
             "since time does not depend on them. `detect` takes two looks (the photo and its mirror image).", "",
             "| variant | parameters | ms per look | vs shipped | vs five-point design |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['variant']} | {r['parameters'] or ''} | {r['ms']:.2f} | {r['ms'] / ref:.2f}x | "
              f"{r['ms'] / base:.2f}x |" for r in rows]
    save_results(out, prov, rows, "Detector network designs: time before training", lines)


if __name__ == "__main__":
    main()
