"""Detection metrics: matching to annotated faces with ignore regions, recall at a false-positive budget, AP.

A detection is a true positive when its IoU with a not-yet-matched annotated
face reaches ``iou`` (0.5 by default, greedy in score order, as WIDER FACE
and PASCAL VOC match). A detection that matches no face but overlaps an ignore
box (IoU >= ``iou``, or half of it inside) counts neither way, so faces the
annotators left out are not false positives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facepoints.detectors.base import box_iou


@dataclass
class ImageResult:
    """Per image: each detection's score and outcome (1 TP, 0 FP, -1 ignored) and the number of faces."""

    scores: np.ndarray
    outcome: np.ndarray
    faces: int


def match_image(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None,
                iou: float = 0.5) -> ImageResult:
    """Greedy matching of one image's detections (any order) to its faces."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    ign = np.zeros((0, 4)) if ignore is None else np.asarray(ignore, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-scores, kind="stable")
    outcome = np.zeros(len(boxes), dtype=np.int8)
    ious = box_iou(boxes, gt) if len(gt) else np.zeros((len(boxes), 0))
    taken = np.zeros(len(gt), dtype=bool)
    for i in order:
        if len(gt):
            cand = np.where(taken, -1.0, ious[i])
            j = int(np.argmax(cand))
            if cand[j] >= iou:
                taken[j] = True
                outcome[i] = 1
                continue
        if len(ign) and _overlaps_ignore(boxes[i], ign, iou):
            outcome[i] = -1
    return ImageResult(scores, outcome, len(gt))


def _overlaps_ignore(box: np.ndarray, ign: np.ndarray, iou: float) -> bool:
    if (box_iou(box, ign) >= iou).any():
        return True
    ix = np.clip(np.minimum(box[2], ign[:, 2]) - np.maximum(box[0], ign[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], ign[:, 3]) - np.maximum(box[1], ign[:, 1]), 0, None)
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    return bool((ix * iy / area >= 0.5).any())


@dataclass
class Summary:
    images: int
    faces: int
    found: int  # faces matched at the threshold
    false_positives: int  # at the threshold
    recall: float
    fp_per_image: float
    ap: float
    threshold: float


def pr_curve(results: Sequence[ImageResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores descending, precision, recall) over every counted detection of every image."""
    scores = np.concatenate([r.scores[r.outcome >= 0] for r in results] or [np.zeros(0)])
    tp = np.concatenate([r.outcome[r.outcome >= 0] for r in results] or [np.zeros(0)]).astype(np.float64)
    faces = max(1, sum(r.faces for r in results))
    order = np.argsort(-scores, kind="stable")
    tp_c = np.cumsum(tp[order])
    fp_c = np.cumsum(1 - tp[order])
    return scores[order], tp_c / np.maximum(tp_c + fp_c, 1e-9), tp_c / faces


def average_precision(results: Sequence[ImageResult]) -> float:
    """Area under the interpolated precision-recall curve (VOC / WIDER style)."""
    _, precision, recall = pr_curve(results)
    if len(recall) == 0:
        return 0.0
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [recall[-1]]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def summarise(results: Sequence[ImageResult], threshold: float) -> Summary:
    """Recall and false positives of the detections scoring at least ``threshold``, and AP over all."""
    found = sum(int(((r.outcome == 1) & (r.scores >= threshold)).sum()) for r in results)
    fps = sum(int(((r.outcome == 0) & (r.scores >= threshold)).sum()) for r in results)
    faces = sum(r.faces for r in results)
    n = max(1, len(results))
    return Summary(len(results), faces, found, fps, found / max(1, faces), fps / n, average_precision(results),
                   threshold)


def threshold_for_fp_budget(results: Sequence[ImageResult], fp_per_image: float) -> float:
    """The lowest score threshold whose false positives per image stay within the budget."""
    fp_scores = np.sort(np.concatenate([r.scores[r.outcome == 0] for r in results] or [np.zeros(0)]))[::-1]
    allowed = int(np.floor(fp_per_image * len(results)))
    if len(fp_scores) <= allowed:
        return 0.0
    return float(np.nextafter(fp_scores[allowed], np.inf))
