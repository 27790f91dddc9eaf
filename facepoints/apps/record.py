"""The one JSON record of a face with its head pose and expression cues (service, photo apps, video).

``Face.to_dict`` gives box, detection score, points and scores; this adds
what the 68 points say about the head. Pose and expression need the iBUG 68
points, so faces of other schemes (and degenerate faces with no pose
solution) report ``null`` instead of failing the whole photo.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from facepoints.apps.expression import expression_cues
from facepoints.apps.pose import HeadPose, head_pose
from facepoints.face import Face
from facepoints.schemes import PointScheme

log = logging.getLogger("facepoints.apps")
POSE_SCHEME = "ibug68"


def face_analysis(points68: np.ndarray, image_size: tuple[int, int] | None,
                  pose: HeadPose | None = None) -> tuple[dict | None, dict | None]:
    """(pose dict, expression dict) of one face; ``pose`` given (video) skips solving it again."""
    if pose is None and image_size is not None:
        try:
            pose = head_pose(points68, image_size)
        except ValueError as e:
            log.warning("no head pose for a face: %s", e)
    try:
        expression = expression_cues(points68).to_dict()
    except ValueError as e:
        log.warning("no expression cues for a face: %s", e)
        expression = None
    return (pose.to_dict() if pose is not None else None), expression


def face_record(face: Face, image_size: tuple[int, int] | None, model_scheme: PointScheme | None = None,
                out_scheme: PointScheme | str | None = None, *, pose: HeadPose | None = None) -> dict:
    """``face.to_dict(out_scheme)`` plus ``pose`` and ``expression`` (from the 68 points, whatever ``out_scheme``).

    Raises ``facepoints.schemes.SchemeError`` when the points cannot be converted to ``out_scheme``.
    """
    scheme = face.scheme or model_scheme
    if face.scheme is None and scheme is not None:
        face = replace(face, scheme=scheme)
    rec = face.to_dict(out_scheme)
    rec["pose"] = rec["expression"] = None
    if scheme is not None and scheme.name == POSE_SCHEME:
        rec["pose"], rec["expression"] = face_analysis(face.points, image_size, pose)
    return rec
