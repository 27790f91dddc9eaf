"""Accuracy as a user gets it: detector -> box map -> landmarks, with 0, 1 or 2 re-crops (upright or not).

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
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facepoints.datasets import load_dataset
from facepoints.geometry import tight_box

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from detection import rotate  # noqa: E402
from provenance import markdown, provenance  # noqa: E402
from shipped import TEST_CONVENTIONS, TEST_SETS  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


def rotated(samples: list, degrees: float) -> list:
    """Each face turned by +-degrees (alternating) on a canvas that holds it; points follow."""
    import cv2

    out = []
    for i, s in enumerate(samples):
        img, pts = rotate(s.image, s.points, degrees if i % 2 else -degrees, cv2.BORDER_REPLICATE)
        out.append(dataclasses.replace(s, image=img, points=pts, box=None, landmark_box=None))
    return out


VARIANTS = {"0": {"refine": 0}, "1": {"refine": 1}, "2": {"refine": 2}, "2, not upright": {"refine": 2, "upright": False}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    import facepoints

    prov = provenance()
    rows = []
    lines = ["# Accuracy with detected boxes", "", markdown(prov), "",
             "| set | faces | found | refine | NME % (found faces) | FR@10 % |", "|---|---:|---:|---:|---:|---:|"]
    sets = {ds: load_dataset(str(path), progress=False)[0] for ds, path in TEST_SETS.items()}
    sets["afw-rot+-45"] = rotated(sets["afw"], 45.0)
    for ds, samples in sets.items():
        for label, kw in VARIANTS.items():
            model = facepoints.load(args.model, threads=1, convention=TEST_CONVENTIONS[ds.split("-rot")[0]], **kw)
            errs = []
            for s in tqdm(samples, desc=f"{ds} refine={label}", leave=False):
                gt_box = tight_box(s.points, s.mask)
                best = max(model.detect(s.image), key=lambda f: iou(tight_box(f.points), gt_box), default=None)
                if best is None or iou(tight_box(best.points), gt_box) < 0.3:
                    continue
                d = np.linalg.norm(s.points[36] - s.points[45])
                errs.append(np.linalg.norm(best.points - s.points, axis=1)[s.mask].mean() / d)
            e = np.array(errs)
            rows.append({"dataset": ds, "faces": len(samples), "found": len(e), "refine": label,
                         "nme": float(100 * e.mean()), "fr10": float(100 * (e > 0.1).mean())})
            lines.append(f"| {ds} | {len(samples)} | {len(e)} | {label} | {100 * e.mean():.2f} | "
                         f"{100 * (e > 0.1).mean():.1f} |")
            print(lines[-1], flush=True)
    lines += ["", "Boxes: the default face detector's (the CNN, its pyramid and threshold from its model card), "
              "mapped to the tight-box convention by its fitted box map; `refine` re-crops around the model's own "
              "points, turned upright with the eye line unless `not upright`. Each set is answered in its own "
              "annotation convention; `afw-rot+-45` is AFW with each face turned by 45 degrees, alternately either "
              "way. A face counts when a detection's points have IoU >= 0.3 with the annotated tight box."]
    out = ROOT / "benchmarks" / "results" / "detected_boxes.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"provenance": prov, "rows": rows}, indent=1), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
