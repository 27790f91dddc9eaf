"""Where does the detector's mirrored look pay: on every pyramid level, or only on the smaller copies?

    python benchmarks/flip_levels.py

The mirrored look doubles the detector's network time, most of it on the
full-size level (level 0, faces under ``band_px``). On the detector's held-out
photos (``benchmarks/detector_validation.py``; no test set) this compares the
shipped detector with the look on every level, with the look on levels >= 1
only (faces of level 0 keep their one score), and without it, at the verifier
weight of the card and the same false-detection budget; and times the detector
(network and decoding, at the card's own candidate floor, verifier excluded) on
the 640x480 three-face photos of ``benchmarks/detection.py``. A study, not a
choice: ``benchmarks/verifier.py`` chooses ``flip``. Writes
benchmarks/results/flip_levels.{md,json}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from detection import three_face_photos
from detector_validation import validation_sets
from provenance import markdown, provenance
from verifier import candidates, evaluate, per_set_cells, per_set_columns

from facepoints.detectors import CnnDetector
from facepoints.detectors.cnn import each_look_floor, merge_mirrored, mirrored
from facepoints.detectors.verifier import FaceVerifier

OUT = ROOT / "benchmarks" / "results" / "flip_levels"


class UpperFlip(CnnDetector):
    """The mirrored look on levels >= 1 only: a face small enough for level 0 is seen one way, at its own score."""

    def _both_looks(self, levels: list, img: np.ndarray, floor: float) -> tuple[np.ndarray, ...]:
        each = each_look_floor(floor)
        a = self._candidates(levels, img, each)
        side = np.maximum(a[0][:, 2] - a[0][:, 0], a[0][:, 3] - a[0][:, 1]) * levels[0][1]
        small = side < levels[0][3]
        big = tuple(x[~small] for x in a)
        if len(levels) > 1:
            big = merge_mirrored(big, mirrored(self._candidates(levels[1:], img, each, mirror=True), img.shape[1]))
        return tuple(np.concatenate([x[small], y]) for x, y in zip(a, big))


def median_ms(detector: CnnDetector, photos: list[np.ndarray], repeats: int = 5) -> float:
    for p in photos:
        detector.detect(p)
    times = []
    for _ in range(repeats):
        for p in photos:
            t0 = time.perf_counter()
            detector.detect(p)
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    cv2.setNumThreads(1)
    sets = validation_sets(str(ROOT / "configs" / "detector_finetune.yaml"), ROOT / "runs" / "detector_val_sets.pkl")
    card = CnnDetector(threads=1)
    spec, floor = card.meta["verifier"], card.candidate_threshold
    verifier = FaceVerifier(ROOT / "facepoints" / "weights" / spec["file"], threads=1)
    photos = [p for p, _ in three_face_photos()]
    variants = {"every level": (CnnDetector, True), "levels >= 1 only": (UpperFlip, True), "none": (CnnDetector, False)}
    rows = []
    for name, (kind, flip) in variants.items():
        found, _ = candidates(sets, kind(threshold=float(spec["candidate_threshold"]), threads=1, verify=False,
                                         flip=flip), verifier)
        r = evaluate(found, float(spec["weight"]), 0.05, flip)
        r["mirrored look"] = name
        r["detector_ms"] = round(median_ms(kind(threshold=floor, threads=1, verify=False, flip=flip), photos), 2)
        rows.append(r)
    prov = provenance()
    OUT.with_suffix(".json").write_text(json.dumps({"provenance": prov, "rows": rows}, indent=1) + "\n")
    names = list(sets)
    lines = ["# The detector's mirrored look, level by level (held-out photos)", "", markdown(prov), "",
             f"Verifier weight {spec['weight']} (the card's); threshold: the lowest final score with at most 0.05 "
             "false detections per held-out photo. Detector ms: median per 640x480 three-face photo, 1 thread, "
             f"candidates from the card's floor {floor:.3f}, verifier excluded.", "",
             "| mirrored look | mean AP | threshold | detector ms | " + per_set_columns(names)[0] + " |",
             "|---|---:|---:|---:|" + per_set_columns(names)[1]]
    for r in rows:
        lines.append(f"| {r['mirrored look']} | {r['mean_ap']:.4f} | {r['threshold']:.4f} | {r['detector_ms']:.1f} | "
                     + per_set_cells(r, names) + " |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
