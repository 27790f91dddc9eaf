"""The one face record with pose and expression (facepoints.apps.record), as the service, apps and video write it."""

from __future__ import annotations

import numpy as np
import pytest

from facepoints.apps.record import face_analysis, face_record
from facepoints.face import Face
from facepoints.schemes import SchemeError, load_scheme


@pytest.mark.parametrize("out_scheme", [None, "ibug68", "five", "kaggle15"])
def test_the_service_record_and_the_shared_record_agree(model, astronaut, out_scheme) -> None:
    """serve.face_record is to become this function; until then both must write the same JSON."""
    from facepoints import serve

    image, _ = astronaut
    (face,) = model.detect(image)
    size = (image.shape[1], image.shape[0])
    target = load_scheme(out_scheme) if out_scheme else model.scheme
    assert face_record(face, size, model.scheme, target) == serve.face_record(face, size, model.scheme, target)


def test_pose_and_expression_only_for_68_points_and_null_when_degenerate(astronaut) -> None:
    image, pts = astronaut
    size = (image.shape[1], image.shape[0])
    ibug = load_scheme("ibug68")
    rec = face_record(Face(np.array([0.0, 0, 9, 9]), pts, np.ones(68), 1.5, ibug), size)
    assert abs(rec["pose"]["yaw"]) < 30 and rec["expression"]["left_eye_openness"] > 0.1
    five = load_scheme("five")
    rec5 = face_record(Face(np.zeros(4), pts[:5], np.ones(5), 1.0, five), size)
    assert rec5["pose"] is None and rec5["expression"] is None and len(rec5["points"]) == 5
    flat = np.zeros((68, 2))  # every point on one spot: no pose solution, no crash
    pose, cues = face_analysis(flat, size)  # cv2.error escaped head_pose before
    assert pose is None and cues is not None
    with pytest.raises(SchemeError, match="no conversion from five to ibug68"):
        face_record(Face(np.zeros(4), pts[:5], np.ones(5), 1.0, five), size, out_scheme="ibug68")
