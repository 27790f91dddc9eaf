"""Drawing landmarks and boxes on RGB images (CLI, evaluation and inference).

Everything is drawn with OpenCV on a copy of the image, so callers never have
their input modified and no GUI/matplotlib backend is needed. Points use the
project convention (pixel centres at integers), which is also OpenCV's, and
are drawn with OpenCV's fixed-point ``shift`` so that a point at x=10.5 really
appears between pixels 10 and 11 instead of being rounded to one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # schemes.py needs yaml; drawing itself only needs .regions
    from facepoints.schemes import PointScheme

Color = tuple[int, int, int]

# Fixed, distinguishable RGB colours: regions keep their colour across images
# and runs, so figures can be compared side by side.
PALETTE: tuple[Color, ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (255, 225, 25),  # yellow
    (0, 130, 200),  # blue
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
)

_SHIFT = 4  # fractional bits for cv2 drawing: 1/16 pixel precision
_SCALE = 1 << _SHIFT


def default_radius(image: np.ndarray) -> int:
    """Point radius that stays visible on large photos without swamping small crops."""
    h, w = image.shape[:2]
    return max(1, round(max(h, w) / 250.0))


def _as_rgb_copy(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return np.ascontiguousarray(img).copy()
    raise ValueError(f"expected an (H, W, 3) RGB image, got shape {img.shape}")


def _fixed(v: float) -> int:
    return round(float(v) * _SCALE)


def region_colors(scheme: PointScheme, default: Color = (0, 255, 0)) -> list[Color]:
    """Per-point colour: each region gets the next palette colour, unassigned points ``default``."""
    colors = [tuple(int(c) for c in default)] * scheme.num_points
    for i, (_, idx) in enumerate(scheme.regions.items()):
        for k in idx:
            colors[k] = PALETTE[i % len(PALETTE)]
    return colors  # type: ignore[return-value]


def draw_points(
    image: np.ndarray,
    points: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    color: Color = (0, 255, 0),
    radius: int | None = None,
    scheme: PointScheme | None = None,
) -> np.ndarray:
    """A copy of the RGB uint8 image with filled dots at the points.

    Points that are masked out or non-finite are skipped (they are "unknown",
    and drawing them at 0,0 or NaN would mislead). With a scheme, points are
    coloured by region; otherwise all use ``color``.
    """
    out = _as_rgb_copy(image)
    _draw_points_inplace(out, points, mask=mask, color=color, radius=radius, scheme=scheme)
    return out


def _draw_points_inplace(
    out: np.ndarray,
    points: np.ndarray | None,
    *,
    mask: np.ndarray | None,
    color: Color,
    radius: int | None,
    scheme: PointScheme | None,
) -> None:
    if points is None:
        return
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    valid = np.isfinite(pts).all(axis=1)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool).reshape(-1)
    r = default_radius(out) if radius is None else max(0, int(radius))
    if scheme is not None and scheme.num_points == len(pts):
        colors = region_colors(scheme, color)
    else:
        colors = [tuple(int(c) for c in color)] * len(pts)
    for (x, y), ok, c in zip(pts, valid, colors):
        if not ok:
            continue
        # Cheap guard against absurd coordinates overflowing cv2's int32 maths.
        if abs(x) > 1e6 or abs(y) > 1e6:
            continue
        cv2.circle(out, (_fixed(x), _fixed(y)), r * _SCALE, c, thickness=-1, lineType=cv2.LINE_AA, shift=_SHIFT)


def draw_box(
    image: np.ndarray, box: Sequence[float], *, color: Color = (255, 255, 0), thickness: int | None = None
) -> np.ndarray:
    """A copy of the image with the box (x0, y0, x1, y1) drawn as a rectangle."""
    out = _as_rgb_copy(image)
    _draw_box_inplace(out, box, color=color, thickness=thickness)
    return out


def _draw_box_inplace(out: np.ndarray, box, *, color: Color, thickness: int | None) -> None:
    if box is None:
        return
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all():
        return
    t = max(1, default_radius(out) // 2) if thickness is None else max(1, int(thickness))
    cv2.rectangle(
        out,
        (_fixed(b[0]), _fixed(b[1])),
        (_fixed(b[2]), _fixed(b[3])),
        tuple(int(c) for c in color),
        thickness=t,
        lineType=cv2.LINE_AA,
        shift=_SHIFT,
    )


def draw_faces(
    image: np.ndarray,
    faces: Sequence[tuple],
    scheme: PointScheme | None = None,
    draw_boxes: bool = True,
    *,
    color: Color = (0, 255, 0),
    box_color: Color = (255, 255, 0),
    radius: int | None = None,
) -> np.ndarray:
    """A copy of the image with every face's box and points.

    ``faces`` holds ``(box, points)`` or ``(box, points, mask)`` tuples; a
    ``None`` box or points is skipped, so detector-only output can be shown too.
    """
    out = _as_rgb_copy(image)
    for face in faces:
        box, points = face[0], face[1]
        mask = face[2] if len(face) > 2 else None
        if draw_boxes:
            _draw_box_inplace(out, box, color=box_color, thickness=None)
        _draw_points_inplace(out, points, mask=mask, color=color, radius=radius, scheme=scheme)
    return out


def save_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB (or grey) uint8 image; the format follows the suffix (.png, .jpg, ...).

    OpenCV writes BGR, hence the conversion; a failed write raises instead of
    cv2's silent ``False``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = _as_rgb_copy(rgb)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path} (unsupported suffix?)")
    return path
