"""Could ``detect`` skip the re-crops of candidates whose first landmark pass says "not a face"? Held-out photos only.

    python benchmarks/first_pass.py

On the detector's held-out validation photos (``benchmarks/detector_validation.py``;
no test set), every candidate of the default model's pipeline (the CNN at the
threshold chosen under the not-a-face cut) gets its face score after the first
landmark pass and after the re-crops. A candidate dropped right after the first
pass when it scores under ``early`` saves its re-crops, but loses every true
face that only passes the cut after its upright re-crop. The table counts both.
Writes benchmarks/results/first_pass.{md,json}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from detector_validation import validation_sets  # noqa: E402
from provenance import markdown, provenance  # noqa: E402

import facepoints  # noqa: E402
from facepoints.detectors import build_detector  # noqa: E402
from facepoints.detectors.metrics import match_image  # noqa: E402

EARLY = (0.001, 0.005, 0.01, 0.02)


def candidate_rows(sets: dict) -> tuple[np.ndarray, float]:
    """(first-pass face score, final face score, outcome, set index) per candidate; outcome 1 true face, 0 false,
    -1 on an ignore region."""
    shipped = facepoints.load(threads=1)
    det = build_detector("facepoints", threads=1, threshold=shipped.detector.score_threshold)
    model = facepoints.load(threads=1, detector=det, min_face_score=0.0, duplicate_iou=1.0)
    rows = []
    for k, (name, scenes) in enumerate(sets.items()):
        for sc in tqdm(scenes, desc=name, leave=False):
            found = model.detector.detect(sc.image)
            if not found:
                continue
            boxes = model.box_maps.apply(found)
            p, s = model._predict_many([sc.image], [boxes])
            first = model.make_faces(boxes, p[0], s[0], [d.score for d in found])
            final = model.detect_many([sc.image], [found])[0]  # same order: no cut, no duplicate merge
            r = match_image(np.array([f.box for f in final]), np.array([f.detection_score for f in final]),
                            sc.boxes, sc.ignore)
            rows += [(a.face_score, b.face_score, o, k) for a, b, o in zip(first, final, r.outcome)]
    return np.array(rows, dtype=np.float64).reshape(-1, 4), shipped.min_face_score


def early_row(rows: np.ndarray, kept: np.ndarray, early: float, names: list[str]) -> dict:
    """What dropping candidates under ``early`` after the first pass does to the faces ``detect`` keeps."""
    dropped = rows[:, 0] < early
    lost = dropped & kept & (rows[:, 2] == 1)
    return {"early": early, "skipped": int(dropped.sum()), "true_lost": int(lost.sum()),
            "false_removed": int((dropped & kept & (rows[:, 2] == 0)).sum()),
            "true_lost_by_set": {n: int((lost & (rows[:, 3] == k)).sum()) for k, n in enumerate(names)}}


def main() -> None:
    cv2.setNumThreads(1)
    sets = validation_sets(ROOT / "configs" / "detector_people.yaml", ROOT / "runs" / "detector_val_sets.pkl")
    rows, cut = candidate_rows(sets)
    kept = rows[:, 1] >= cut
    true_kept = int((kept & (rows[:, 2] == 1)).sum())
    table = [early_row(rows, kept, e, list(sets)) for e in EARLY]
    prov = provenance()
    result = {"provenance": prov, "cut": cut, "candidates": len(rows), "true_kept": true_kept, "rows": table}
    out = ROOT / "benchmarks" / "results" / "first_pass"
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# Dropping candidates after the first landmark pass (held-out photos)", "", markdown(prov), "",
             (f"{len(rows)} candidates of the default pipeline on the held-out validation photos; after the re-crops, "
             f"{true_kept} true faces pass the not-a-face cut ({cut:g}). Dropping a candidate whose first-pass face "
             "score is under `early` (before its re-crops) would lose:"), "",
             "| early | candidates dropped | true faces lost | by set | false detections removed |",
             "|---:|---:|---:|---|---:|"]
    share = {r["early"]: 100 * r["true_lost"] / max(true_kept, 1) for r in table}
    lines += [f"| {r['early']:g} | {r['skipped']} | {r['true_lost']} ({share[r['early']]:.1f} %) "
              f"| {', '.join(f'{n} {v}' for n, v in r['true_lost_by_set'].items())} | {r['false_removed']} |"
              for r in table]
    lines += ["", "Not kept in `detect`: every cut of the table loses true faces that pass after their re-crop."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
