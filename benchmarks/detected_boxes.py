"""Accuracy as a user gets it: Haar detector -> box map -> landmarks, with 0, 1 or 2 re-crops.

    python benchmarks/detected_boxes.py [--model default]

accuracy.py feeds tight ground-truth boxes, as the field does; here the model
finds the faces itself (``LandmarkModel.detect``), so the figures include the
detector's box errors and show what ``refine`` (re-cropping around the tight
box of the model's own points) buys. A face counts when a detection's points
have IoU >= 0.3 with the annotated tight box; NME is over those faces.
Writes benchmarks/results/detected_boxes.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facepoints.config import data_root
from facepoints.datasets import load_dataset
from facepoints.geometry import tight_box

ROOT = Path(__file__).resolve().parents[1]
DATA = data_root()
TEST_SETS = {
    "youtube-test": DATA / "youtube-faces-68" / "test_frames_keypoints.csv",
    "afw": DATA / "300w-68" / "afw",
}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    import facepoints

    lines = ["# Accuracy with detected boxes", "", "Command: `python benchmarks/detected_boxes.py`", "",
             "| set | faces | found | refine | NME % (found faces) | FR@10 % |", "|---|---:|---:|---:|---:|---:|"]
    for ds, path in TEST_SETS.items():
        samples, _ = load_dataset(str(path), progress=False)
        for refine in (0, 1, 2):
            model = facepoints.load(args.model, threads=1, refine=refine)
            errs = []
            for s in tqdm(samples, desc=f"{ds} refine={refine}", leave=False):
                gt_box = tight_box(s.points, s.mask)
                best = max(model.detect(s.image), key=lambda f: iou(tight_box(f.points), gt_box), default=None)
                if best is None or iou(tight_box(best.points), gt_box) < 0.3:
                    continue
                d = np.linalg.norm(s.points[36] - s.points[45])
                errs.append(np.linalg.norm(best.points - s.points, axis=1)[s.mask].mean() / d)
            e = np.array(errs)
            lines.append(f"| {ds} | {len(samples)} | {len(e)} | {refine} | {100 * e.mean():.2f} | "
                         f"{100 * (e > 0.1).mean():.1f} |")
            print(lines[-1], flush=True)
    lines += ["", "Boxes: the Haar detector's, mapped to the tight-box convention by the fitted box map "
              "(benchmarks/results/box_map.md); `refine` re-crops around the model's own points."]
    out = ROOT / "benchmarks" / "results" / "detected_boxes.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
