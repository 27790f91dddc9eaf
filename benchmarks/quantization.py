"""Which int8 recipe to ship: held-out NME and network time of float32 and of int8 variants (stem, weight bits).

    python benchmarks/quantization.py [--models default fast accurate]

Each shipped checkpoint (checkpoints/<model>.pt) is exported four ways and
run by onnxruntime on its recipe's validation faces (10 % of the training
people and photos, held out by name, each face in its own markup), so the
choice touches no test set. Time is the network alone, batch 1, 1 thread,
median of interleaved rounds. Writes benchmarks/results/quantization.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from provenance import markdown, provenance

from facepoints.checkpoint import read_checkpoint
from facepoints.export import calibration_crops, export_onnx, quantize_onnx
from facepoints.losses import nme_batch
from facepoints.recipe import load_train_config
from facepoints.schemes import load_scheme
from facepoints.trainset import LandmarkDataset, prepare_samples

# int8 variants: quantize_onnx's options. 8-bit weights saturate onnxruntime's 16-bit pair sums on x86 CPUs
# without VNNI (so their answers depend on the CPU); 7-bit weights give the same answers everywhere.
INT8 = {"int8, int8 stem, 8-bit weights": {"float_stem": False, "reduce_range": False},
        "int8, float stem, 8-bit weights": {"float_stem": True, "reduce_range": False},
        "int8, float stem, 7-bit weights": {"float_stem": True, "reduce_range": True}}
VARIANTS = ("float32", *INT8)
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "quantization"


def validation_faces(checkpoint: Path) -> tuple[list[tuple], list[str], tuple[int, int]]:
    """The checkpoint's recipe's held-out faces as model inputs: (crops, targets, masks, convention index)."""
    ck = read_checkpoint(checkpoint)
    saved = Path(checkpoint).parent / "config.yaml"  # a run's own (an ablation's recipe file has another name)
    cfg = load_train_config(saved if saved.is_file() else ROOT / "configs" / f"{ck['config']['name']}.yaml")
    scheme = load_scheme(cfg.data.scheme)
    with tempfile.TemporaryDirectory() as tmp:
        _, val = prepare_samples(cfg, scheme, Path(tmp), progress=False)
    loader = torch.utils.data.DataLoader(LandmarkDataset(val, cfg, scheme, train=False), batch_size=64)
    return [(x.numpy(), t, m, c) for x, t, m, _, c in loader], list(cfg.data.conventions), scheme.normalise


def held_out_nme(session: ort.InferenceSession, batches: list[tuple], shifts: np.ndarray,
                 names: list[str], pair: tuple[int, int]) -> dict[str, float]:
    """NME % per markup; ``shifts`` (C, K, 2) move the default output into each face's own markup."""
    per: dict[str, list[float]] = {}
    for x, t, m, conv in batches:
        p = session.run(["points"], {"image": x})[0] + shifts[conv.numpy()]
        for c, v in zip(conv.tolist(), nme_batch(torch.from_numpy(p).float(), t, m, pair).numpy()):
            per.setdefault(names[int(c)], []).append(float(v))
    return {k: round(100 * float(np.nanmean(v)), 3) for k, v in per.items()}


def network_ms(sessions: dict[str, ort.InferenceSession], x: np.ndarray, rounds: int = 7, n: int = 300) -> dict:
    """Median ms per batch-1 run; rounds interleave the variants so a busy moment hits them all alike."""
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        for _ in range(50):
            s.run(None, {"image": x})
    for _ in range(rounds):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            for _ in range(n):
                s.run(None, {"image": x})
            times[k].append(1000 * (time.perf_counter() - t0) / n)
    return {k: round(float(np.median(v)), 4) for k, v in times.items()}


def measure(model: str, tmp: Path) -> dict:
    checkpoint = ROOT / "checkpoints" / f"{model}.pt"
    ck = read_checkpoint(checkpoint)
    table = ck["state_dict"].get("point_offset")
    batches, names, pair = validation_faces(checkpoint)
    k = batches[0][1].shape[1]
    shifts = np.zeros((len(names), k, 2), np.float32)
    if table is not None and table.ndim == 3:
        shifts = (table - table[0]).numpy().astype(np.float32)
    fp32 = export_onnx(checkpoint, tmp / f"{model}_fp32.onnx", int8=True)
    crops = calibration_crops(checkpoint, 200)
    paths = {"float32": fp32, **{v: quantize_onnx(fp32, tmp / f"{model}_q{i}.onnx", crops, **kw)
                                 for i, (v, kw) in enumerate(INT8.items())}}
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    sessions = {v: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for v, p in paths.items()}
    nme = {v: held_out_nme(s, batches, shifts, names, pair) for v, s in sessions.items()}
    ms = network_ms(sessions, batches[0][0][:1].copy())
    return {"checkpoint": checkpoint.name, "variants": {v: {"nme": nme[v], "network_ms_b1": ms[v]} for v in VARIANTS},
            "faces": {n: sum(int((c == i).sum()) for *_, c in batches) for i, n in enumerate(names)}}


def write(results: dict, out: Path, command: str) -> None:
    prov = provenance(command)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"provenance": prov, "models": results}, indent=2) + "\n")
    names = sorted({n for r in results.values() for n in r["faces"]})
    faces = "; ".join(f"{m}: " + ", ".join(f"{c} {n}" for n, c in r["faces"].items()) for m, r in results.items())
    lines = ["# int8 recipe: which layers stay float (validation faces only)", "", markdown(prov), "",
             ("Network alone, batch 1, 1 thread, onnxruntime (median of interleaved rounds); NME % on the recipe's "
              f"held-out training people and photos ({faces} faces), each face in its own markup. The shipped export "
              "keeps the stem (the convolution on the 3-channel image) float when that is no worse here, and "
              "quantises weights to 7 bits: with 8, x86 CPUs without VNNI saturate onnxruntime's 16-bit sums of "
              "products, so the same file answers differently on different CPUs (compare the rows with 8-bit "
              "weights across runs on different CPUs)."), "",
             "| model | variant | network ms | " + " | ".join(f"NME % {n}" for n in names) + " |",
             "|---|---|---:|" + "---:|" * len(names)]
    for model, r in results.items():
        for v in VARIANTS:
            row = r["variants"][v]
            lines.append(f"| {model} | {v} | {row['network_ms_b1']:.3f} | "
                         + " | ".join(f"{row['nme'].get(n, float('nan')):.3f}" for n in names) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["default", "fast", "accurate"])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        results = {m: measure(m, Path(tmp)) for m in args.models}
    command = "python benchmarks/quantization.py --models " + " ".join(args.models)
    write(results, args.out, command if args.out == DEFAULT_OUT else f"{command} --out {args.out}")


if __name__ == "__main__":
    main()
