"""Face alignment for recognition: a similarity transform of 5 points onto the ArcFace 112x112 template.

Face-recognition networks (ArcFace and most models since) are trained on crops
made this way, so embedding a face aligned here compares like with like. The
5 points (eye centres, nose tip, mouth corners) come from the 68 by the
``five`` scheme's table; the fit is a least-squares similarity (rotation,
uniform scale, shift), never a full affine, so faces are not sheared.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facepoints.apps.points import check_points68, to_five

# The 5-point template of insightface's ArcFace alignment (arcface_dst) for 112x112 crops, in the
# pixel-centres-at-integers convention of cv2.warpAffine: image-left eye, image-right eye, nose tip,
# image-left mouth corner, image-right mouth corner (the ``five`` scheme's order).
ARCFACE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
])
ARCFACE_112.flags.writeable = False


def five_points(points68: np.ndarray) -> np.ndarray:
    """(5, 2) eye centres, nose tip and mouth corners of one face, in ``ARCFACE_112`` order."""
    return to_five(check_points68(points68))


def template(size: int = 112) -> np.ndarray:
    """The ArcFace template scaled to a size x size crop (edges of the crop map to edges)."""
    if size < 8:
        raise ValueError(f"crop size must be at least 8 pixels, got {size}")
    return (ARCFACE_112 + 0.5) * (size / 112.0) - 0.5


def alignment_matrix(points68: np.ndarray, size: int = 112) -> np.ndarray:
    """2x3 similarity from image pixels to the aligned crop (least squares over the 5 points)."""
    src = five_points(points68)
    if not np.isfinite(src).all():
        raise ValueError("alignment needs finite eye, nose and mouth points")
    # A threshold no residual reaches makes every point an inlier, so the refined result is the plain
    # least-squares similarity over all five (as insightface's Umeyama fit), not a 2-point RANSAC guess.
    m, _ = cv2.estimateAffinePartial2D(src, template(size), method=cv2.RANSAC, ransacReprojThreshold=1e9,
                                       refineIters=50)
    if m is None:
        raise ValueError("the 5 points are degenerate (coincident); no similarity transform fits them")
    return m


def align_face(image: np.ndarray, points68: np.ndarray, size: int = 112) -> np.ndarray:
    """The aligned RGB crop (size, size, 3) of one face; outside the photo is black, as in ArcFace training."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {img.shape}")
    m = alignment_matrix(points68, size)
    flags = cv2.INTER_AREA if np.hypot(m[0, 0], m[1, 0]) < 1.0 else cv2.INTER_LINEAR
    return cv2.warpAffine(img, m, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def align_faces(image: np.ndarray, faces_points: Sequence[np.ndarray], size: int = 112) -> list[np.ndarray]:
    """One aligned crop per face, in the order given."""
    return [align_face(image, p, size) for p in faces_points]
