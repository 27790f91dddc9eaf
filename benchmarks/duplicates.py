"""When two of ``detect``'s faces are one face: the duplicate cut, chosen on the detector's held-out photos.

    python benchmarks/duplicates.py

The detector's NMS merges boxes of one face that overlap enough; a rolled
face sometimes gets two boxes too different for that, and both re-crop onto
the same points. On the held-out validation photos (benchmarks/detector_validation.py:
composed scenes, photos as they are, enlarged and turned; no test set), every
face ``detect`` keeps is matched to the annotated faces with and without an
NMS over the refined faces at each IoU of a grid. Rule: the fewest false
detections with no true face lost; ties go to the highest IoU (the mildest
cut). Writes benchmarks/results/duplicates.{md,json}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from detector_validation import validation_sets  # noqa: E402
from provenance import markdown, provenance  # noqa: E402

import facepoints  # noqa: E402
from facepoints.detectors.base import nms  # noqa: E402
from facepoints.detectors.metrics import match_image  # noqa: E402

GRID = (1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)


def main() -> None:
    sets = validation_sets(ROOT / "configs" / "detector_people.yaml", ROOT / "runs" / "detector_val_sets.pkl")
    model = facepoints.load(threads=1, duplicate_iou=1.0)
    counts = {iou: {name: [0, 0] for name in sets} for iou in GRID}  # true, false detections
    for name, scenes in sets.items():
        for sc in tqdm(scenes, desc=name, leave=False):
            faces = model.detect(sc.image)
            boxes = np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4)
            scores = np.array([f.detection_score for f in faces], dtype=np.float64)
            for iou in GRID:
                keep = nms(boxes, scores, iou, len(boxes)) if iou < 1 and len(boxes) else np.arange(len(boxes))
                r = match_image(boxes[keep], scores[keep], sc.boxes, sc.ignore, 0.5)
                counts[iou][name][0] += int((r.outcome == 1).sum())
                counts[iou][name][1] += int((r.outcome == 0).sum())
    total = {iou: [sum(c[0] for c in counts[iou].values()), sum(c[1] for c in counts[iou].values())] for iou in GRID}
    lossless = [iou for iou in GRID if total[iou][0] == total[1.0][0]]
    chosen = min(lossless, key=lambda iou: (total[iou][1], -iou))
    prov = provenance()
    lines = ["# Duplicate faces after the re-crops, chosen on held-out photos", "", markdown(prov), "",
             "| duplicate_iou | " + " | ".join(f"{n} ({len(sets[n])} photos) true / false" for n in sets)
             + " | all true / false |", "|---|" + "---:|" * (len(sets) + 1)]
    for iou in GRID:
        cells = [f"{counts[iou][n][0]} / {counts[iou][n][1]}" for n in sets]
        label = "1 (off)" if iou == 1.0 else f"{iou:g}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {total[iou][0]} / {total[iou][1]} |")
    lines += ["", f"Chosen: **duplicate_iou {chosen:g}** (fewest false detections with no true face lost; "
              "ties to the highest IoU). `facepoints.load(duplicate_iou=1)` keeps every face.", "",
              "True/false: faces `detect` keeps (the default detector, threshold, not-a-face cut and re-crops) "
              "matched at IoU 0.5 to the annotated tight boxes; faces on ignore regions count as neither."]
    out = ROOT / "benchmarks" / "results" / "duplicates.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"provenance": prov,
                                                    "counts": {str(k): v for k, v in counts.items()},
                                                    "chosen_duplicate_iou": chosen}, indent=1), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
