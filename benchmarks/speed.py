"""Speed of the landmark step (box given, detector excluded) and of the whole pipeline, against dlib.

    python benchmarks/speed.py [--models default seed_baseline] [--repeats 300]

Every figure comes from this one run, so ratios to dlib are fair even on a
busy machine. Torch rows need the training checkpoints (checkpoints/*.pt) and
torch installed; dlib rows need the [bench] extra. Writes benchmarks/results/speed.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from facepoints.config import data_root
from facepoints.datasets import load_dataset
from facepoints.geometry import tight_box

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import markdown, provenance

DATA = data_root()
RESULTS = ROOT / "benchmarks" / "results"


def float_twin(name: str) -> Path | None:
    """The float32 export of a shipped int8 model's checkpoint, to show what quantisation buys (needs torch)."""
    from facepoints.inference import model_dir, read_sidecar

    ck = ROOT / "checkpoints" / f"{name}.pt"
    onnx_path = model_dir() / f"{name}.onnx"
    if not ck.exists() or not onnx_path.exists() or importlib.util.find_spec("torch") is None:
        return None
    if "int8" not in read_sidecar(onnx_path).precision:
        return None
    from facepoints.export import export_onnx

    return export_onnx(ck, ROOT / "runs" / "benchmarks" / f"{name}-float32.onnx", name=f"{name}-float32")


def per_call_ms(fn, repeats: int, warmup: int = 20) -> float:
    """Median of 5 blocks of calls: robust to the other core's bursts."""
    for _ in range(warmup):
        fn()
    per_block = max(1, repeats // 5)
    return statistics.median(block_ms(fn, per_block) for _ in range(5))


def block_ms(fn, calls: int) -> float:
    """Mean ms per call over ``calls`` calls in a row."""
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1000


def interleaved_best_ms(runs: list, calls: int, rounds: int, warmup: int) -> np.ndarray:
    """Each call's best block of ``calls`` over ``rounds`` turns, the calls taking turns block by block, so that
    a slower stretch of the machine falls on all of them (the variant benchmarks compare graphs this way)."""
    for run in runs:
        block_ms(run, warmup)
    best = np.full(len(runs), np.inf)
    for _ in range(rounds):
        for i, run in enumerate(runs):
            best[i] = min(best[i], block_ms(run, calls))
    return best


class DlibClock:
    """dlib's shape predictor on one face, timed in alternation with each model row: this VM's speed drifts by
    20-30 % within minutes, so each ratio comes from blocks of dlib calls and model calls run back to back."""

    def __init__(self, image: np.ndarray, box: np.ndarray, repeats: int) -> None:
        import dlib

        folder = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0])
        pred = dlib.shape_predictor(str(folder / "models" / "shape_predictor_68_face_landmarks.dat"))
        x0, y0, x1, y1 = box[0].round().astype(int)
        rect, img = dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), np.ascontiguousarray(image)
        self._call, self.repeats, self.runs = (lambda: pred(img, rect)), repeats, []

    def paired(self, fn, pairs: int = 15) -> tuple[float, float, float]:
        """(model ms, dlib ms, median of the per-pair ratios) over ``pairs`` back-to-back blocks of each, the
        order alternating so neither always runs second."""
        per_block = max(1, self.repeats // 5)
        for _ in range(20):
            fn()
            self._call()
        ours, theirs = [], []
        for k in range(pairs):
            if k % 2:
                ours.append(block_ms(fn, per_block))
                theirs.append(block_ms(self._call, per_block))
            else:
                theirs.append(block_ms(self._call, per_block))
                ours.append(block_ms(fn, per_block))
        self.runs += theirs
        ratio = statistics.median(a / b for a, b in zip(ours, theirs))
        return statistics.median(ours), statistics.median(theirs), ratio

    def row(self) -> dict:
        ms = statistics.median(self.runs)
        return {"method": "dlib shape_predictor_68", "runtime": "dlib (C++)", "threads": 1, "ms_per_face_b1": ms,
                "faces_per_s_b32": 1000 / ms, "dlib_ms_alongside": ms, "ratio_vs_dlib": 1.0,
                "dlib_range": (min(self.runs), max(self.runs))}


def onnx_row(name: str | Path, flip: bool, threads: int, image: np.ndarray, box: np.ndarray, repeats: int,
             dlib: DlibClock | None) -> dict:
    """Network alone, then the landmark step for one box and for 32 boxes."""
    import facepoints

    label = (name.stem if isinstance(name, Path) else name) + (" +flip" if flip else "")
    model = facepoints.load(name, threads=threads, flip_average=flip)
    x = np.random.default_rng(0).random((1, model.channels, model.input_size, model.input_size), dtype=np.float32)
    net_ms = per_call_ms(lambda: model._session.run(None, {"image": x}), repeats)

    def step() -> None:
        model.landmarks(image, box)

    if dlib is not None:
        step_ms, alongside, ratio = dlib.paired(step)
    else:
        step_ms, alongside, ratio = per_call_ms(step, repeats), None, None
    boxes32 = np.repeat(box, 32, axis=0)  # the whole landmark step (crops, network, mapping) for 32 faces
    b32 = per_call_ms(lambda: model.landmarks(image, boxes32), max(10, repeats // 10), warmup=3)
    return {"method": label, "runtime": "onnxruntime " + model.card.precision.split()[0], "threads": threads,
            "net_ms_b1": net_ms, "ms_per_face_b1": step_ms, "faces_per_s_b32": 32000 / b32,
            "dlib_ms_alongside": alongside, "ratio_vs_dlib": ratio}


def torch_row(name: str, threads: int, repeats: int) -> dict | None:
    """The checkpoint's network in torch float32, for scale (None without the checkpoint or torch)."""
    ck = ROOT / "checkpoints" / f"{name}.pt"
    if not ck.exists() or importlib.util.find_spec("torch") is None:
        return None
    import torch

    from facepoints.checkpoint import load_checkpoint

    net, meta = load_checkpoint(ck)
    size, ch = meta["normalisation"]["input_size"], meta["normalisation"]["channels"]
    torch.set_num_threads(threads)
    xt, xb = torch.rand(1, ch, size, size), torch.rand(32, ch, size, size)
    with torch.inference_mode():
        ms = per_call_ms(lambda: net(xt), repeats)
        b32 = per_call_ms(lambda: net(xb), max(10, repeats // 10), warmup=3)
    return {"method": name, "runtime": "torch float32 (network only)", "threads": threads, "net_ms_b1": ms,
            "ms_per_face_b1": float("nan"), "faces_per_s_b32": float("nan"), "net_faces_per_s_b32": 32000 / b32}


def end_to_end(name: str, face: np.ndarray) -> dict:
    """Detection + landmarks on a 640x480 photo with one face, 1 thread."""
    import cv2

    import facepoints

    canvas = np.full((480, 640, 3), 110, np.uint8)
    s = min(300 / face.shape[0], 300 / face.shape[1])
    small = cv2.resize(face, (int(face.shape[1] * s), int(face.shape[0] * s)))
    canvas[90:90 + small.shape[0], 170:170 + small.shape[1]] = small
    model = facepoints.load(name, threads=1)
    n_faces = len(model.detect(canvas))
    det_ms = per_call_ms(lambda: model.detector.detect(canvas), 30, warmup=3)
    total_ms = per_call_ms(lambda: model.detect(canvas), 30, warmup=3)
    return {"model": name, "faces_found": n_faces, "detector_ms": det_ms, "total_ms": total_ms,
            "landmarks_ms": total_ms - det_ms}


def report(rows: list[dict], e2e: list[dict], dlib_runs: list[float], prov: dict) -> list[str]:
    """The markdown page."""
    lines = ["# Speed", "", markdown(prov), "",
             f"Machine: {os.cpu_count()} CPU cores; another job may share them, so compare ratios within this run.", "",
             ("| method | runtime | threads | network ms (b=1) | landmark step ms/face (b=1) | "
              "landmark step faces/s (32 boxes per call) | step vs dlib |"), "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['ratio_vs_dlib']:.2f}x" if r.get("ratio_vs_dlib") is not None else ""
        net = f"{r['net_ms_b1']:.3f}" if "net_ms_b1" in r else ""
        step = f"{r['ms_per_face_b1']:.3f}" if np.isfinite(r["ms_per_face_b1"]) else ""
        fps = f"{r['faces_per_s_b32']:.0f}" if np.isfinite(r["faces_per_s_b32"]) else \
            f"(network only: {r['net_faces_per_s_b32']:.0f})"
        lines.append(f"| {r['method']} | {r['runtime']} | {r['threads']} | {net} | {step} | {fps} | {ratio} |")
    lines += ["", ("Landmark step = crop + network + mapping back to the image, box given (as dlib's row). "
              "dlib's faces/s is its per-face time inverted (it has no batch mode); ours runs the same whole step for "
              "32 boxes in one call. 'step vs dlib' is the median ratio over 15 pairs of blocks, one of dlib's calls "
              "and one of the row's, run back to back "
              + (f"(dlib ranged {min(dlib_runs):.2f}-{max(dlib_runs):.2f} ms per call over this run's blocks; its "
                 "row shows the median)."
                 if dlib_runs else "(dlib not installed).")), "",
              "## End to end, 640x480 photo with one face (1 thread)", "",
              "| model | faces found | detector ms | landmarks ms | total ms |", "|---|---:|---:|---:|---:|"]
    for r in e2e:
        lines.append(f"| {r['model']} | {r['faces_found']} | {r['detector_ms']:.1f} | {r['landmarks_ms']:.1f} | "
                     f"{r['total_ms']:.1f} |")
    if e2e:
        lines += ["", "The face detector dominates the end-to-end time." if e2e[0]["detector_ms"] >
                  e2e[0]["landmarks_ms"] else "The landmark step dominates the end-to-end time."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["default", "seed_baseline"])
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--flip-average", nargs="*", default=["default"], help="models also timed with flip averaging")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    samples, _ = load_dataset(str(DATA / "300w-68" / "afw"), progress=False)
    one = samples[0]
    box = tight_box(one.points)[None]
    dlib = DlibClock(one.image, box, args.repeats) if importlib.util.find_spec("dlib") is not None else None
    names: list[str | Path] = list(args.models)
    for name in args.models:
        twin = float_twin(name)
        if twin is not None:
            names.insert(names.index(name) + 1, twin)
    rows: list[dict] = []
    for name, flip in [(n, False) for n in names] + [(n, True) for n in args.flip_average]:
        rows += [onnx_row(name, flip, threads, one.image, box, args.repeats, dlib) for threads in (1, 2)]
        if not flip and isinstance(name, str):
            rows += [r for threads in (1, 2) if (r := torch_row(name, threads, args.repeats)) is not None]
    if dlib is not None:
        rows.insert(0, dlib.row())
    e2e = [end_to_end(name, samples[5].image) for name in args.models[:1]]
    prov = provenance()
    lines = report(rows, e2e, dlib.runs if dlib is not None else [], prov)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "speed.json").write_text(json.dumps({"provenance": prov, "rows": rows, "end_to_end": e2e}, indent=1),
                                         encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
