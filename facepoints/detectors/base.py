"""What every face detector shares: the detection record, IoU, non-maximum suppression, grey conversion."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np


class DetectorError(RuntimeError):
    """A face detector cannot run (model or cascade missing or unreadable, optional extra absent, bad input)."""


def onnx_session(path: Path, threads: int | None, error: type[Exception] = DetectorError) -> Any:
    """An onnxruntime CPU session (``threads``: intra-op threads, None for onnxruntime's own choice), or an
    ``error`` naming the file it cannot load. onnxruntime is imported only when a model loads."""
    import onnxruntime as ort

    if threads is not None and threads < 1:
        raise ValueError("threads must be at least 1 (or None for onnxruntime's default)")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
        raise error(f"onnxruntime cannot load {path}: {e}") from None


@dataclass(eq=False)  # identity equality: comparing numpy boxes with == would raise
class Detection:
    """One detected face in image pixels (``facepoints.geometry`` convention).

    ``box`` is the detector's own box; ``BoxMaps`` turn it into the landmark
    model's tight box. ``score`` is only comparable between detections of
    the same detector (the CNN's is a probability-like value in [0, 1]).
    """

    box: np.ndarray  # (4,) float: x0, y0, x1, y1
    score: float
    cascade: str = "haarcascade_frontalface_alt2.xml"  # which model found it: the key of its box map
    mirrored: bool = False  # found on the mirrored image (profile faces looking the other way)
    # (5, 2) eye centres (the image's left first), nose tip, mouth corners, from detectors that predict them
    points: np.ndarray | None = None


class Detector(Protocol):
    """The contract of a registered backend: RGB or grey uint8 image -> detections, best first."""

    def detect(self, image_rgb: np.ndarray) -> list[Detection]: ...


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (N, 4) x (M, 4) -> (N, M); single boxes give a (1, 1) array."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.4, limit: int = 1000) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    OpenCV's NMS (C++) is ~5x faster than numpy on the hundreds of candidates of a busy photo. It is given
    each box's rank instead of its score: ranks are distinct and positive, so its stable sort keeps ties in
    index order and its strict ``score > 0`` filter keeps every box. Boxes without area overlap nothing here
    (OpenCV would call two of them one), so they bypass it and are always kept.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:limit * 10]
    b = boxes[order]
    wh = b[:, 2:] - b[:, :2]
    has_area = (wh > 0).all(axis=1)
    solid, kept = np.flatnonzero(has_area), np.flatnonzero(~has_area)
    if len(solid):
        xywh = np.concatenate([b[solid, :2], wh[solid]], axis=1)
        rank = np.arange(len(solid), 0, -1, dtype=np.float64)
        picked = cv2.dnn.NMSBoxes(xywh.tolist(), rank.tolist(), 0.0, float(iou), 1.0, len(solid))
        kept = np.concatenate([kept, solid[np.asarray(picked, dtype=np.int64).reshape(-1)]])
    return order[np.sort(kept)[:limit]]


def _checked(image: np.ndarray) -> np.ndarray:
    """A uint8 greyscale (H, W) or RGB(A) (H, W, 3|4) image, or a DetectorError saying what it got."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise DetectorError(f"the detector takes uint8 images, not {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4)):
        return img
    raise DetectorError(f"expected an RGB (H, W, 3) or greyscale (H, W) image, got shape {img.shape}")


def to_grey(image: np.ndarray) -> np.ndarray:
    img = _checked(image)
    if img.ndim == 2:
        return np.ascontiguousarray(img)
    code = cv2.COLOR_RGB2GRAY if img.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
    return cv2.cvtColor(np.ascontiguousarray(img), code)


def to_rgb(image: np.ndarray) -> np.ndarray:
    img = _checked(image)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    return np.ascontiguousarray(img[..., :3])
