"""68-point helpers of the applications: scheme tables, face size, and the torch-free rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facepoints.apps import align, pose
from facepoints.apps.points import RIGID, eye_distance, face_size, to_five, to_kaggle15
from facepoints.schemes import convert_points, load_scheme
from tests.helpers import apply, similarity

ROOT = Path(__file__).resolve().parents[2]
FLIP = load_scheme("ibug68").flip_permutation()
runner = CliRunner()


def test_the_applications_never_import_torch() -> None:
    code = ("import sys\nimport facepoints.apps.align, facepoints.apps.pose, facepoints.apps.expression\n"
            "import facepoints.apps.ar, facepoints.apps.video, facepoints.apps.run, facepoints.testing.synth\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- scheme helpers and face size


def test_five_and_fifteen_points_come_from_the_scheme_tables() -> None:
    pts = pose.project_model(10, -5, 8, (640, 480))
    five = align.five_points(pts)
    assert np.allclose(five[0], pts[36:42].mean(axis=0)) and np.allclose(five[1], pts[42:48].mean(axis=0))
    assert np.allclose(five[2:], pts[[30, 48, 54]])
    assert five[0, 0] < five[1, 0], "ArcFace order: image-left eye first"
    assert np.allclose(to_five(pts), convert_points(pts, None, "ibug68", "five")[0])
    fifteen = to_kaggle15(np.stack([pts, pts + 1]))
    assert fifteen.shape == (2, 15, 2) and np.allclose(fifteen[0, 10], pts[30])
    with pytest.raises(ValueError, match="68"):
        align.five_points(pts[:60])


def test_face_size_is_the_eye_distance_of_a_frontal_face_and_follows_similarity() -> None:
    frontal = pose.MEAN_FACE_68[:, :2]
    assert face_size(frontal) == pytest.approx(eye_distance(frontal), rel=2e-3)
    m = similarity(33, 2.5, (40, -7))
    assert face_size(apply(m, frontal)) == pytest.approx(2.5 * face_size(frontal), rel=1e-9)
    turned = pose.project_model(40, 0, 0, (640, 480))
    frontal_px = pose.project_model(0, 0, 0, (640, 480))
    # turning the head shrinks the eye distance by ~cos(40) but the face size much less
    assert eye_distance(turned) / eye_distance(frontal_px) < 0.85
    assert face_size(turned) / face_size(frontal_px) > 0.9
    assert set(RIGID.tolist()).isdisjoint(range(48, 68)), "mouth points move with expression"


