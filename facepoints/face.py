"""One face and its one JSON form, shared by ``detect``, the photo apps, video and the service.

Coordinates are rounded to 1/100 pixel and scores to 4 digits: finer figures
are noise, and the files stay readable. Non-finite values become ``null``,
never ``NaN`` (which is not JSON).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from facepoints.schemes import PointScheme


def rounded(value: float, digits: int) -> float | None:
    v = float(value)
    return round(v, digits) if math.isfinite(v) else None


def box_list(box: np.ndarray) -> list[float | None]:
    return [rounded(v, 2) for v in np.asarray(box).reshape(-1)]


def points_list(points: np.ndarray) -> list[list[float | None]]:
    return [[rounded(x, 2), rounded(y, 2)] for x, y in np.asarray(points).reshape(-1, 2)]


def scores_list(scores: np.ndarray) -> list[float | None]:
    return [rounded(s, 4) for s in np.asarray(scores).reshape(-1)]


@dataclass(eq=False)  # identity equality: comparing numpy arrays with == would raise
class Face:
    """One face: the box the landmarks were predicted in, its points in image pixels and how far to trust them.

    With a calibrated model (a card with ``score_calibration``, docs/scores.md)
    ``scores`` are P(point within 5 % of the eye distance) and ``face_score`` is
    P(face NME < 10 %); without, ``scores`` are the raw head output and
    ``face_score`` is None.
    """

    box: np.ndarray  # (4,) float x0, y0, x1, y1: the box of the last landmark pass (tight-box convention)
    points: np.ndarray  # (K, 2) float image pixels (facepoints.geometry convention)
    scores: np.ndarray  # (K,) float in [0, 1]
    detection_score: float  # the detector's confidence; higher is more face-like
    scheme: PointScheme | None = field(default=None, repr=False)  # the points' scheme, when known
    face_score: float | None = None  # P(the fit is good: face NME < 10 %), from a calibrated model
    doubtful: bool = False  # face_score below the threshold chosen on validation faces

    def converted(self, target: PointScheme | str) -> Face:
        """The same face in another point scheme (``schemes.convert_points``); a derived score is its sources'
        lowest."""
        from facepoints.schemes import convert_points, convert_scores, load_scheme

        if self.scheme is None:
            raise ValueError("this face does not know its point scheme, so it cannot be converted")
        dst = load_scheme(target)
        points, _ = convert_points(self.points, None, self.scheme, dst)
        return replace(self, points=points, scores=convert_scores(self.scores, self.scheme, dst), scheme=dst)

    def rescaled(self, scale: float) -> Face:
        """Points and box of an image decoded ``scale`` times smaller -> the original image's pixels."""
        if scale == 1.0:
            return self
        return replace(self, box=(np.asarray(self.box, dtype=np.float64) + 0.5) * scale - 0.5,
                       points=(np.asarray(self.points, dtype=np.float64) + 0.5) * scale - 0.5)

    def to_dict(self, scheme: PointScheme | str | None = None) -> dict:
        """``{"box", "detection_score", "points", "scores", "face_score", "doubtful"}``, in ``scheme`` when given."""
        face = self if scheme is None or (self.scheme is not None and _name(scheme) == self.scheme.name) \
            else self.converted(scheme)
        return {
            "box": box_list(face.box),
            "detection_score": rounded(face.detection_score, 4),
            "points": points_list(face.points),
            "scores": scores_list(face.scores),
            "face_score": None if face.face_score is None else rounded(face.face_score, 4),
            "doubtful": bool(face.doubtful),
        }


def _name(scheme: PointScheme | str) -> str:
    return scheme if isinstance(scheme, str) else scheme.name
