"""Would int8 speed up the face detector? Time and held-out AP of the shipped float32 detector against int8 twins.

    python benchmarks/detector_int8.py

The shipped detector (facepoints/weights/detector.onnx) is quantised as the
landmark models are (static QDQ, per-channel weights, score and box heads kept
float; with and without a float stem), its int8 ranges set on training photos
of its recipe (configs/detector_wide.yaml; held-out people excluded). Each
variant runs alone (no verifier) on the held-out validation photos of
benchmarks/detector_validation.py, and is timed at the sizes of a 640x480
photo's pyramid levels: batch 1, 1 thread, median of interleaved rounds.
Writes benchmarks/results/detector_int8.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from detector_validation import validation_sets
from provenance import markdown, provenance
from quantization import network_ms

from facepoints.datasets import load_dataset
from facepoints.datasets.core import split_by_group
from facepoints.detector_train import load_detector_config
from facepoints.detectors import build_detector
from facepoints.detectors.evaluate import PR_FLOOR, LabelledPhoto, run_detector
from facepoints.export import quantize_onnx

SHIPPED = ROOT / "facepoints" / "weights" / "detector.onnx"
CONFIG = ROOT / "configs" / "detector_wide.yaml"
LEVELS = ((480, 640), (256, 320), (128, 160))  # a 640x480 photo's pyramid levels, padded to multiples of 32
SETS = ("natural", "rotated", "grey")


def network_input(image: np.ndarray, side: int) -> np.ndarray:
    """The photo shrunk to ``side`` on its longer edge, zero-padded to multiples of 32, as the detector runs it."""
    s = side / max(image.shape[:2])
    img = cv2.resize(image, (max(32, round(image.shape[1] * s)), max(32, round(image.shape[0] * s))),
                     interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    x = np.zeros((1, 3, h + (-h % 32), w + (-w % 32)), np.float32)
    x[0, :, :h, :w] = img.transpose(2, 0, 1)
    return x


def calibration_inputs(n: int = 60, seed: int = 0) -> list[np.ndarray]:
    """Training photos of the detector's recipe (its held-out people left out) at the sizes the pyramid runs."""
    cfg = load_detector_config(CONFIG)
    rng = np.random.default_rng(seed)
    images = []
    for spec in cfg.data.train:
        train, _ = split_by_group(load_dataset(spec, progress=False)[0], cfg.data.val_fraction, cfg.seed)
        images += [train[i].image for i in rng.permutation(len(train))[: n // len(cfg.data.train)]]
    return [network_input(img, int(rng.choice([128, 256, 320, 640]))) for img in images]


def variants(tmp: Path) -> dict[str, Path]:
    """Shipped float32 and its int8 twins, each with a copy of the card so the detector class can load it."""
    inputs = calibration_inputs()
    out = {"float32 (shipped)": SHIPPED}
    for label, stem in (("int8, float stem", True), ("int8, int8 stem", False)):
        path = tmp / f"detector_{'fstem' if stem else 'q8stem'}.onnx"
        quantize_onnx(SHIPPED, path, inputs, float_stem=stem)
        shutil.copy(SHIPPED.with_suffix(".json"), path.with_suffix(".json"))
        out[label] = path
    return out


def held_out_ap(model: Path, sets: dict) -> dict[str, float]:
    det = build_detector("facepoints", model=str(model), threshold=PR_FLOOR, threads=1, verify=False)
    thr = build_detector("facepoints", model=str(model), verify=False).score_threshold
    out = {}
    for name in SETS:
        photos = [LabelledPhoto(str(i), s.image, s.boxes, s.ignore) for i, s in enumerate(sets[name])]
        out[name] = round(float(run_detector(name, det, photos).report(thr)["ap"]), 4)
    return out


def measure() -> dict:
    import onnxruntime as ort

    sets = validation_sets(ROOT / "configs" / "detector_finetune.yaml", ROOT / "runs" / "detector_val_sets.pkl")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = variants(Path(tmp))
        sessions = {k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                    for k, p in paths.items()}
        x = np.random.default_rng(0).random((1, 3, *LEVELS[0]), dtype=np.float32) * 255
        times = {f"{h}x{w}": network_ms(sessions, np.ascontiguousarray(x[:, :, :h, :w]), rounds=7, n=30)
                 for h, w in LEVELS}
        for k, p in paths.items():
            rows[k] = {"ap": held_out_ap(p, sets), "ms": {size: t[k] for size, t in times.items()}}
    return rows


def write(rows: dict, out: Path) -> None:
    prov = provenance()
    out.with_suffix(".json").write_text(json.dumps({"provenance": prov, "variants": rows}, indent=2) + "\n")
    sizes = list(next(iter(rows.values()))["ms"])
    lines = ["# Face detector: float32 or int8 (held-out photos only)", "", markdown(prov), "",
             ("Network alone, batch 1, 1 thread, onnxruntime (median of interleaved rounds), at the input sizes of a "
              "640x480 photo's pyramid levels (height x width); AP of the detector alone (no verifier) on the "
              "held-out validation photos of `detector_validation.py`."), "",
             "| variant | " + " | ".join(f"ms {s}" for s in sizes) + " | " + " | ".join(f"AP {s}" for s in SETS) + " |",
             "|---|" + "---:|" * (len(sizes) + len(SETS))]
    for k, r in rows.items():
        lines.append(f"| {k} | " + " | ".join(f"{r['ms'][s]:.3f}" for s in sizes) + " | "
                     + " | ".join(f"{r['ap'][s]:.4f}" for s in SETS) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detector_int8")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    write(measure(), args.out)


if __name__ == "__main__":
    main()
