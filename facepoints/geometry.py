"""Boxes, face crops and the one coordinate convention used everywhere.

Convention: points are 0-based pixel coordinates with pixel centres at
integers, so pixel (0, 0) covers [-0.5, 0.5] x [-0.5, 0.5] (the convention of
OpenCV's warpAffine). A crop maps the square face region onto an S x S model
input; normalised coordinates are ``(u + 0.5) / S`` in crop pixels ``u``, i.e.
0 and 1 are the outer edges of the crop. Training and inference share these
functions, so what the model learns is exactly what inference undoes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

Box = np.ndarray  # (4,) float: x0, y0, x1, y1 in pixel coordinates


def tight_box(points: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The tight box (x0, y0, x1, y1) around the valid points: the landmark model's box convention."""
    pts = np.asarray(points, dtype=np.float64)
    if mask is not None:
        pts = pts[np.asarray(mask, dtype=bool)]
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) < 2:
        raise ValueError("a box needs at least two valid points")
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def square_region(box: np.ndarray, context: float) -> tuple[float, float, float]:
    """Centre and side of the square crop around a box, ``context`` times its longer side."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0) * context
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0, side


def crop_matrix(box: np.ndarray, size: int, context: float, angle: float = 0.0) -> np.ndarray:
    """2x3 affine matrix from image pixels to crop pixels of an S x S crop.

    ``angle`` (radians) is the face's roll: the crop turns with it, about the
    box centre, so a rolled face comes out upright (``upright_box`` gives the
    matching box).
    """
    cx, cy, side = square_region(box, context)
    s = size / side
    c, si = math.cos(angle) * s, math.sin(angle) * s
    k = size / 2.0 - 0.5
    return np.array([[c, si, k - (c * cx + si * cy)], [-si, c, k - (c * cy - si * cx)]])


def crop_shift(box_a: np.ndarray, angle_a: np.ndarray, box_b: np.ndarray, angle_b: np.ndarray) -> np.ndarray:
    """(N,) how far crop b's corners are from crop a's, as a fraction of b's side (boxes (N, 4), angles (N,)).

    One number for a shift, a zoom and a turn of the crop: when it is small,
    cropping again would show the network the same pixels.
    """
    def corners(box: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
        centre = (box[:, :2] + box[:, 2:]) / 2.0
        side = np.maximum((box[:, 2:] - box[:, :2]).max(axis=1), 1.0)
        c, s = np.cos(angle), np.sin(angle)
        u = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) / 2.0
        ux = u[None, :, 0] * c[:, None] - u[None, :, 1] * s[:, None]
        uy = u[None, :, 0] * s[:, None] + u[None, :, 1] * c[:, None]
        return centre[:, None, :] + side[:, None, None] * np.stack([ux, uy], axis=-1), side

    ca, _ = corners(box_a, np.asarray(angle_a, dtype=np.float64).reshape(-1))
    cb, side = corners(box_b, np.asarray(angle_b, dtype=np.float64).reshape(-1))
    return np.linalg.norm(cb - ca, axis=-1).max(axis=-1) / side


def upright_box(points: np.ndarray, angle: float) -> np.ndarray:
    """The tight box of the points seen turned upright by ``-angle``, placed at its centre in the image.

    Its width and height are those of the upright face, so
    ``crop_matrix(upright_box(p, a), S, c, a)`` crops a rolled face as the
    model was trained to see an upright one.
    """
    pts = np.asarray(points, dtype=np.float64)
    return upright_boxes(pts[np.isfinite(pts).all(axis=1)][None], np.array([angle]))[0]


def upright_boxes(points: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """``upright_box`` for N faces of finite points at once: (N, K, 2), (N,) -> (N, 4)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, points.shape[-2], 2)
    c, s = np.cos(angles), np.sin(angles)
    qx = pts[..., 0] * c[:, None] + pts[..., 1] * s[:, None]
    qy = -pts[..., 0] * s[:, None] + pts[..., 1] * c[:, None]
    mx, my = (qx.min(axis=1) + qx.max(axis=1)) / 2.0, (qy.min(axis=1) + qy.max(axis=1)) / 2.0
    hx, hy = (qx.max(axis=1) - qx.min(axis=1)) / 2.0, (qy.max(axis=1) - qy.min(axis=1)) / 2.0
    cx, cy = mx * c - my * s, mx * s + my * c
    return np.stack([cx - hx, cy - hy, cx + hx, cy + hy], axis=1)


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to points (..., 2); NaNs stay NaN."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp_crop(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Crop by the matrix; pixels outside the image repeat the border, so no black frames teach edges."""
    flags = cv2.INTER_AREA if abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]) < 1.0 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def to_normalised(points_crop: np.ndarray, size: int) -> np.ndarray:
    return (np.asarray(points_crop, dtype=np.float64) + 0.5) / size


def from_normalised(points_norm: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(points_norm, dtype=np.float64) * size - 0.5


def normalised_to_image(points_norm: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Model output (..., K, 2) in normalised crop coordinates -> image pixels: the inverse of ``prepare_input``.

    ``m`` is one image->crop matrix (2, 3), or one per face (N, 2, 3) for points (N, K, 2): a whole batch maps
    back in a few array operations, which matters at a millisecond per face.
    """
    m = np.asarray(m, dtype=np.float64)
    crop = np.asarray(points_norm, dtype=np.float64) * size - (0.5 + m[..., None, :, 2])
    return crop @ np.linalg.inv(m[..., :2]).swapaxes(-1, -2)


def clip_to_image(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip to the image area, edges included (as the seed's inference did)."""
    return np.clip(np.asarray(points, dtype=np.float64), -0.5, np.array([width - 0.5, height - 0.5]))


def box_from_xywh(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def prepare_input(
    image: np.ndarray, box: np.ndarray, size: int, context: float, channels: int, angle: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Image + box (+ roll) -> model input (C, S, S) float32 in [0, 1], and the image->crop matrix.

    The single preprocessing path shared by training and inference.
    """
    m = crop_matrix(box, size, context, angle)
    crop = warp_crop(image, m, size)
    return crop_to_input(crop, channels), m


def crop_to_input(crop: np.ndarray, channels: int) -> np.ndarray:
    """RGB uint8 crop (S, S, 3) -> (C, S, S) float32 in [0, 1]; C=1 uses luma, as the seed's grey input."""
    if channels == 1:
        grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        return (grey.astype(np.float32) / 255.0)[None]
    if channels == 3:  # C-ordered for onnxruntime; cast, then divide in place: the same bits, half the time
        x = crop.transpose(2, 0, 1).astype(np.float32, order="C")
        return np.divide(x, np.float32(255.0), out=x)
    raise ValueError(f"channels must be 1 or 3, not {channels}")


MAX_BOX_SCALE = 8.0  # a box side over this many image sides is not a face in that image


def check_boxes(boxes: np.ndarray | Sequence[Sequence[float]], image_size: tuple[int, int]) -> np.ndarray:
    """(N, 4) float boxes, or a ValueError naming the first box that cannot be a face in this image."""
    raw = np.asarray(boxes)
    if raw.size == 0:
        return np.zeros((0, 4))
    if np.iscomplexobj(raw):
        raise ValueError(f"boxes must be real numbers, got complex values {raw.tolist()}")
    try:
        b = raw.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"boxes must be numbers x0, y0, x1, y1, got {raw.tolist()!r}") from None
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be an (N, 4) array of x0, y0, x1, y1, got shape {b.shape}")
    w, h = image_size
    for i, box in enumerate(b.tolist()):  # Python floats: a few boxes check faster than numpy's calls start
        problem = _box_problem(box, w, h)
        if problem:
            raise ValueError(f"box {i} {box}: {problem} (image {w} x {h})")
    return b


def _box_problem(box: list[float], w: int, h: int) -> str:
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        return "not finite"
    if x1 <= x0 or y1 <= y0:
        return "empty or inverted (needs x0 < x1 and y0 < y1)"
    if max(x1 - x0, y1 - y0) > MAX_BOX_SCALE * max(w, h):  # 1e308 - -1e308 is inf here: too big, as it should be
        return f"more than {MAX_BOX_SCALE:g} times the image's size"
    if x1 < -0.5 or y1 < -0.5 or x0 > w - 0.5 or y0 > h - 0.5:
        return "wholly outside the image"
    return ""
