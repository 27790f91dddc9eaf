"""``detect``'s re-crops: each face cropped again around its own points, turned upright, until it stops moving.

The detector's box is only an estimate of the tight box the landmark model
was trained on, and it does not turn with a rolled face. So after each pass
the next crop is the tight box of the points, seen along the eye line
(``geometry.upright_box``), and a face whose next crop would barely move keeps
its points. Last, two detections that re-cropped onto one face become one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facepoints.detectors.base import nms
from facepoints.face import Face
from facepoints.geometry import crop_shift, upright_boxes

# A re-crop is skipped for a face whose crop would move by less than this share of its side (0: always re-crop)
REFINE_TOL = 0.08  # chosen on held-out faces: benchmarks/results/detected_boxes_validation.md
# Two detections whose refined faces overlap by this IoU are one face (1: keep both); benchmarks/results/duplicates.md
DUPLICATE_IOU = 0.3  # fewest held-out false faces with none lost, the highest such IoU


def tight_boxes(points: np.ndarray) -> np.ndarray:
    """(N, K, 2) -> (N, 4): the model's box convention, the tight box of the points."""
    return np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1)


def rolls(points: np.ndarray, pair: tuple[int, int] | None) -> np.ndarray:
    """(N, K, 2) -> (N,) each face's roll in radians along the line through ``pair`` (0 without a pair)."""
    if pair is None or not len(points):
        return np.zeros(len(points))
    d = points[:, pair[1]] - points[:, pair[0]]
    # schemes list the pair either way round (kaggle15: the subject's left eye first), so the line's
    # direction is taken within +-90 degrees: faces are not re-cropped upside down
    return (np.arctan2(d[:, 1], d[:, 0]) + np.pi / 2) % np.pi - np.pi / 2


def first_crops(boxes: np.ndarray, detections: Sequence, turn: bool) -> tuple[np.ndarray, np.ndarray]:
    """Crop boxes and angles (radians) of the first landmark pass. A detector that predicts five points gives
    each face's roll, so with ``turn`` its first crop is already upright, the box shrunk from the turned face's
    axis-aligned box to the upright face's; other detections start unturned, on their own box."""
    angles = np.zeros(len(boxes))
    for i, d in enumerate(detections):
        five = d.points if turn else None
        if five is not None and np.isfinite(five[:2]).all():
            angles[i] = rolls(five[None, :2], (0, 1))[0]
    crops = boxes.copy()
    turned = np.flatnonzero(angles != 0.0)
    if len(turned):
        grow = (np.abs(np.cos(angles[turned])) + np.abs(np.sin(angles[turned])))[:, None]
        centre, half = (boxes[turned, :2] + boxes[turned, 2:]) / 2, (boxes[turned, 2:] - boxes[turned, :2]) / 2
        crops[turned] = np.concatenate([centre - half / grow, centre + half / grow], axis=1)
    return crops, angles


def recrop(boxes: np.ndarray, points: np.ndarray, crops: np.ndarray, angles: np.ndarray,
           pair: tuple[int, int] | None, tol: float) -> np.ndarray:
    """Indices of the faces worth another pass; ``boxes``, ``crops`` and ``angles`` are updated in place.

    A face whose new crop would move by less than ``tol`` of its side would
    show the network nearly the same pixels again, so it keeps its points.
    """
    ok = np.flatnonzero(np.isfinite(points).all(axis=(1, 2)))
    boxes[ok] = tight_boxes(points[ok])
    ang = rolls(points[ok], pair)
    new = upright_boxes(points[ok], ang)
    moved = crop_shift(crops[ok], angles[ok], new, ang) >= tol if len(ok) else np.zeros(0, bool)
    crops[ok[moved]], angles[ok[moved]] = new[moved], ang[moved]
    return ok[moved]


def distinct(faces: list[Face], iou: float) -> list[Face]:
    """One face per face: two detections of one rolled face (a box each, too different for the detector's NMS)
    re-crop onto the same points; the better detection stays, in the original order."""
    if iou >= 1.0 or len(faces) < 2:
        return faces
    boxes = np.array([f.box for f in faces], dtype=np.float64)
    scores = np.array([f.detection_score if f.detection_score is not None else 0.0 for f in faces])
    return [faces[i] for i in sorted(nms(boxes, scores, iou, len(faces)))]
