"""68-point helpers shared by the applications: scheme conversion and a pose-robust face size.

Conversions go through ``facepoints.schemes.convert_points`` (the ``derive``
tables in the scheme YAML files), so the 68 -> 5 and 68 -> 15 definitions live
in one place. The schemes are parsed once per process because video code
converts points every frame.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from facepoints.schemes import PointScheme, convert_points, load_scheme

NUM_POINTS = 68
# Points that barely move with expression: upper jaw contour, nose, eye corners.
RIGID = np.array([0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])
OUTER_EYE_CORNERS = (36, 45)


@cache
def scheme(name: str) -> PointScheme:
    """A built-in scheme, parsed once (schemes are frozen, so sharing them is safe)."""
    return load_scheme(name)


def check_points68(points68: np.ndarray) -> np.ndarray:
    """(68, 2) float64 array, or a clear error instead of a wrong index later."""
    pts = np.asarray(points68, dtype=np.float64)
    if pts.shape != (NUM_POINTS, 2):
        raise ValueError(f"expected 68 points of the ibug68 scheme as a (68, 2) array, got shape {pts.shape}")
    return pts


def convert(points68: np.ndarray, target: str) -> np.ndarray:
    """68 points (..., 68, 2) -> another built-in scheme (``five``, ``kaggle15``) via its derive table."""
    pts = np.asarray(points68, dtype=np.float64)
    out, _ = convert_points(pts, None, scheme("ibug68"), scheme(target))
    return out


def to_five(points68: np.ndarray) -> np.ndarray:
    """(..., 5, 2): image-left eye centre, image-right eye centre, nose tip, image-left and image-right mouth corner."""
    return convert(points68, "five")


def to_kaggle15(points68: np.ndarray) -> np.ndarray:
    """(..., 15, 2) in the Kaggle Facial Keypoints column order."""
    return convert(points68, "kaggle15")


def eye_distance(points68: np.ndarray) -> float:
    """Outer eye corner distance (points 36/45): the project's error normaliser."""
    pts = check_points68(points68)
    return float(np.linalg.norm(pts[OUTER_EYE_CORNERS[1]] - pts[OUTER_EYE_CORNERS[0]]))


# RMS radius of the RIGID points of a frontal mean face, in outer-eye-corner distances.
_RIGID_RMS_PER_EYE_DISTANCE = 0.6063  # tests check it against pose.MEAN_FACE_68


def face_size(points68: np.ndarray) -> float:
    """Face size in pixels, in units of a frontal face's outer eye corner distance.

    The RMS radius of points that do not move with expression, rescaled so a
    frontal face gives its eye-corner distance. Unlike the eye distance alone
    it shrinks only partly when the head turns (the vertical extent does not
    foreshorten with yaw), and it ignores the mouth and brows, whose movement
    is what the expression cues measure.
    """
    pts = check_points68(points68)[RIGID]
    rms = float(np.sqrt(((pts - pts.mean(axis=0)) ** 2).sum(axis=1).mean()))
    return rms / _RIGID_RMS_PER_EYE_DISTANCE
