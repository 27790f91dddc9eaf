"""AR overlays: glasses and a moustache placed on every face from its points.

The art is drawn by this project with OpenCV (no third-party images): an RGBA
picture whose colour layer is filled everywhere (so resampling never pulls in
dark fringes) and whose alpha layer is drawn anti-aliased. Each overlay is
placed by a two-point similarity: glasses by the eye centres, the moustache by
the upper lip along the eye line. So it follows the face's position, size and
roll, and is alpha-blended only inside its own box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import cv2
import numpy as np

from facepoints.apps.points import check_points68, face_size, to_five

Effect = Callable[[np.ndarray, np.ndarray], None]  # (RGB image, drawn on in place; 68 points)

ART_EYE_DISTANCE = 200.0  # pixels between the lens centres of the glasses art
ART_MOUSTACHE_WIDTH = 220.0  # pixels between the moustache anchors
MOUSTACHE_WIDTH = 0.62  # anchor distance in face sizes (about the mouth width)
MOUSTACHE_DROP = 0.45  # anchor centre from nose base (33) towards the upper lip (51)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@cache
def glasses_art() -> tuple[np.ndarray, np.ndarray]:
    """(RGBA uint8 image, (2, 2) lens centres): dark frames, lightly tinted lenses with a highlight."""
    d = ART_EYE_DISTANCE
    w, h = int(2.4 * d), int(0.86 * d)
    cx, cy = w / 2, h * 0.45
    centres = np.array([[cx - d / 2, cy], [cx + d / 2, cy]])
    frame_rgb, lens_rgb, shine_rgb = (25, 25, 30), (40, 60, 90), (255, 255, 255)
    axes = (int(0.46 * d), int(0.36 * d))
    rim = max(2, int(0.06 * d))
    color = np.empty((h, w, 3), np.uint8)
    color[:] = frame_rgb
    alpha = np.zeros((h, w), np.uint8)
    for x, y in centres:
        c = (round(x), round(y))
        cv2.ellipse(color, c, axes, 0, 0, 360, lens_rgb, -1)
        cv2.ellipse(alpha, c, axes, 0, 0, 360, 110, -1, cv2.LINE_AA)
        shine = (int(x - 0.18 * d), int(y - 0.12 * d))
        cv2.ellipse(color, shine, (int(0.12 * d), int(0.04 * d)), -25, 0, 360, shine_rgb, -1)
        cv2.ellipse(alpha, shine, (int(0.12 * d), int(0.04 * d)), -25, 0, 360, 150, -1, cv2.LINE_AA)
        cv2.ellipse(color, c, axes, 0, 0, 360, frame_rgb, rim + 2)
        cv2.ellipse(alpha, c, axes, 0, 0, 360, 255, rim, cv2.LINE_AA)
    bridge_c = (round(cx), round(cy - 0.05 * d))
    cv2.ellipse(color, bridge_c, (int(0.09 * d), int(0.08 * d)), 0, 200, 340, frame_rgb, rim + 2)
    cv2.ellipse(alpha, bridge_c, (int(0.09 * d), int(0.08 * d)), 0, 200, 340, 255, rim, cv2.LINE_AA)
    for side in (-1, 1):  # temple stubs from the rims' outer edges to the sides of the head
        x0 = cx + side * (d / 2 + axes[0] - rim)
        x1 = cx + side * (w / 2 - 2)
        pts = np.array([[x0, cy - 0.22 * d], [x1, cy - 0.27 * d], [x1, cy - 0.20 * d], [x0, cy - 0.13 * d]])
        cv2.fillConvexPoly(alpha, np.round(pts).astype(np.int32), 255, cv2.LINE_AA)
    rgba = np.dstack([color, alpha])
    return _readonly(rgba), _readonly(centres)


def _curve(p0, p1, p2, p3, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2, p3 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2, p3))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


@cache
def moustache_art() -> tuple[np.ndarray, np.ndarray]:
    """(RGBA uint8 image, (2, 2) anchors): a handlebar moustache; anchors span its middle along the lip."""
    aw = ART_MOUSTACHE_WIDTH
    w, h = int(1.6 * aw), int(0.55 * aw)
    cx, cy = w / 2, h * 0.35
    hair = (70, 45, 30)
    color = np.empty((h, w, 3), np.uint8)
    color[:] = hair
    alpha = np.zeros((h, w), np.uint8)
    outline = []
    for side in (-1, 1):  # one lobe per side: top edge out to a curled tip, lower edge back to the middle
        s = np.array([side, 1.0])
        top = _curve((0, 0), (0.25 * aw, -0.12 * aw), (0.55 * aw, 0.02 * aw), (0.72 * aw, -0.08 * aw))
        bottom = _curve((0.72 * aw, -0.08 * aw), (0.62 * aw, 0.16 * aw), (0.32 * aw, 0.30 * aw), (0, 0.14 * aw))
        lobe = np.concatenate([top, bottom]) * s + np.array([cx, cy])
        outline.append(lobe)
        cv2.fillPoly(alpha, [np.round(lobe * 16).astype(np.int32)], 245, cv2.LINE_AA, 4)
    rng = np.random.default_rng(7)  # fixed seed: the same art every time
    lines = color.copy()
    for _ in range(260):  # hair strokes, darker and lighter, fanning out from the middle
        side = rng.choice([-1, 1])
        u = rng.uniform(0.02, 0.62)
        x0 = cx + side * u * aw
        y0 = cy + rng.uniform(-0.05, 0.2) * aw * (1 - u)
        dx, dy = side * rng.uniform(0.02, 0.06) * aw, rng.uniform(0.02, 0.07) * aw
        f = rng.uniform(0.55, 1.5)
        shade = tuple(int(np.clip(c * f, 0, 255)) for c in hair)
        cv2.line(lines, (int(x0), int(y0)), (int(x0 + dx), int(y0 + dy)), shade, 2, cv2.LINE_AA)
    color = cv2.GaussianBlur(lines, (3, 3), 0)
    anchors = np.array([[cx - aw / 2, cy + 0.05 * aw], [cx + aw / 2, cy + 0.05 * aw]])
    return _readonly(np.dstack([color, alpha])), _readonly(anchors)


def similarity_from_pairs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity mapping two points exactly onto two points (rotation, uniform scale, shift)."""
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    vs, vd = s[1] - s[0], d[1] - d[0]
    zs, zd = complex(*vs), complex(*vd)
    if abs(zs) == 0:
        raise ValueError("source points coincide")
    z = zd / zs
    a = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.hstack([a, (d[0] - a @ s[0])[:, None]])


def paste_rgba(image: np.ndarray, rgba: np.ndarray, m: np.ndarray) -> None:
    """Alpha-blend ``rgba`` warped by the 2x3 matrix ``m`` (art -> image pixels) onto ``image`` in place."""
    h, w = image.shape[:2]
    ah, aw = rgba.shape[:2]
    corners = np.array([[-0.5, -0.5], [aw - 0.5, -0.5], [aw - 0.5, ah - 0.5], [-0.5, ah - 0.5]]) @ m[:, :2].T + m[:, 2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    art, mm = rgba, np.asarray(m, dtype=np.float64).copy()
    scale = float(np.hypot(mm[0, 0], mm[1, 0]))
    if scale < 0.6:  # shrink with area averaging first: a plain bilinear warp would alias the thin rims
        f = scale * 1.25
        art = cv2.resize(np.ascontiguousarray(rgba), (max(1, round(aw * f)), max(1, round(ah * f))),
                         interpolation=cv2.INTER_AREA)
        fx, fy = art.shape[1] / aw, art.shape[0] / ah
        pre = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])  # art -> shrunk art
        mm = mm @ np.vstack([cv2.invertAffineTransform(pre), [0.0, 0.0, 1.0]])
    mm[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(np.ascontiguousarray(art), mm, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    a = warped[..., 3:4].astype(np.float32) / 255.0
    roi = image[y0:y1, x0:x1]
    roi[:] = np.round(roi * (1.0 - a) + warped[..., :3] * a).astype(np.uint8)


def draw_glasses(image: np.ndarray, points68: np.ndarray) -> None:
    """Glasses with their lens centres on the eye centres (so they follow scale and roll), in place."""
    five = to_five(check_points68(points68))
    art, centres = glasses_art()
    paste_rgba(image, art, similarity_from_pairs(centres, five[:2]))


def draw_moustache(image: np.ndarray, points68: np.ndarray) -> None:
    """A moustache on the upper lip, sized by the face and turned with the eye line (roll), in place."""
    pts = check_points68(points68)
    eye = pts[45] - pts[36]
    u = eye / max(float(np.linalg.norm(eye)), 1e-9)
    centre = pts[33] + MOUSTACHE_DROP * (pts[51] - pts[33])
    half = 0.5 * MOUSTACHE_WIDTH * face_size(pts) * u
    art, anchors = moustache_art()
    paste_rgba(image, art, similarity_from_pairs(anchors, np.stack([centre - half, centre + half])))


EFFECTS: dict[str, Effect] = {"glasses": draw_glasses, "moustache": draw_moustache}


def apply_effect(image: np.ndarray, faces_points: Sequence[np.ndarray], effect: str) -> np.ndarray:
    """A copy of the RGB uint8 image with the effect drawn on every face (68-point arrays, any number)."""
    if effect not in EFFECTS:
        raise ValueError(f"unknown effect {effect!r}; available: {', '.join(sorted(EFFECTS))}")
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {img.dtype} {img.shape}")
    out = np.ascontiguousarray(img).copy()
    for points in faces_points:
        EFFECTS[effect](out, points)
    return out
