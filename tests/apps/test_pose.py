"""Head pose (facepoints.apps.pose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facepoints.apps import pose
from facepoints.apps.points import eye_distance
from facepoints.schemes import load_scheme
from tests.helpers import mirror

ROOT = Path(__file__).resolve().parents[2]
FLIP = load_scheme("ibug68").flip_permutation()
runner = CliRunner()


# ---------------------------------------------------------------- head pose


def test_head_pose_returns_the_angles_the_points_were_projected_at() -> None:
    rng = np.random.default_rng(0)
    for size in ((640, 480), (480, 800)):
        for yaw in (-60, -30, 0, 25, 55):
            for pitch in (-30, 0, 20):
                roll = float(rng.uniform(-40, 40))
                centre = rng.uniform(0.3, 0.7, 2) * size
                pts = pose.project_model(yaw, pitch, roll, size, centre=tuple(centre),
                                         distance_mm=float(rng.uniform(350, 1500)))
                p = pose.head_pose(pts, size)
                assert (abs(p.yaw - yaw) < 1 and abs(p.pitch - pitch) < 1
                        and abs(p.roll - roll) < 1), (yaw, pitch, roll, p)
                assert p.reprojection_error < 1e-6
                assert np.allclose(p.rotation @ p.rotation.T, np.eye(3), atol=1e-9)


def test_noisy_points_still_give_angles_within_a_few_degrees() -> None:
    rng = np.random.default_rng(1)
    size = (640, 480)
    clean = pose.project_model(20, -10, 5, size)
    noise = 0.01 * eye_distance(clean)
    errs = [np.abs(np.array(pose.angles_from_rotation(pose.head_pose(clean + rng.normal(0, noise, clean.shape),
                                                                     size).rotation)) - (20, -10, 5))
            for _ in range(30)]
    assert np.max(errs) < 3.0


def test_a_mirrored_face_negates_yaw_and_roll(astronaut) -> None:
    size = (640, 480)
    for yaw, pitch, roll in ((35, 10, 12), (-20, -15, -25)):
        pts = pose.project_model(yaw, pitch, roll, size, centre=(250, 260))
        a, b = pose.head_pose(pts, size), pose.head_pose(mirror(pts, size[0]), size)
        assert b.yaw == pytest.approx(-a.yaw, abs=1e-6) and b.roll == pytest.approx(-a.roll, abs=1e-6)
        assert b.pitch == pytest.approx(a.pitch, abs=1e-6)
    image, real = astronaut  # any points, not only the model's own shape
    w, h = image.shape[1], image.shape[0]
    a, b = pose.head_pose(real, (w, h)), pose.head_pose(mirror(real, w), (w, h))
    assert b.yaw == pytest.approx(-a.yaw, abs=1e-4) and b.roll == pytest.approx(-a.roll, abs=1e-4)
    assert b.pitch == pytest.approx(a.pitch, abs=1e-4)


def test_angle_signs_mean_what_the_docstring_says() -> None:
    size = (640, 480)

    def nose_minus_eyes(p):
        return p[30] - (p[36] + p[45]) / 2

    front = nose_minus_eyes(pose.project_model(0, 0, 0, size))
    assert nose_minus_eyes(pose.project_model(20, 0, 0, size))[0] > front[0] + 5, "yaw > 0: nose to the image right"
    assert nose_minus_eyes(pose.project_model(0, 20, 0, size))[1] < front[1] - 5, "pitch > 0: face tilts up"
    rolled = pose.project_model(0, 0, 20, size)
    assert rolled[45, 1] > rolled[36, 1] + 5, "roll > 0: the eye line falls to the image right"
    for angles in ((10, 20, 30), (-50, 5, -80)):
        assert np.allclose(pose.angles_from_rotation(pose.rotation_from_angles(*angles)), angles)


def test_draw_pose_axes_draws_from_the_nose_without_touching_the_input(astronaut) -> None:
    image, _ = astronaut
    size = (image.shape[1], image.shape[0])
    pts = pose.project_model(30, 0, 0, size, centre=(256, 250), distance_mm=400)
    p = pose.head_pose(pts, size)
    before = image.copy()
    out = pose.draw_pose_axes(image, p, pts, size)
    assert np.array_equal(image, before)
    changed = np.argwhere(np.abs(out.astype(int) - image).sum(axis=2) > 60)
    assert len(changed) > 50
    nose = pts[30][::-1]
    assert np.linalg.norm(changed - nose, axis=1).min() < 3, "the axes start at the nose tip"
    ends = pose.pose_axes_2d(p, pts, size)
    assert ends[3, 0] > ends[0, 0] + 10, "the forward axis of a face turned right points right"
    assert ends[2, 1] < ends[0, 1] - 10, "the up axis points up"


