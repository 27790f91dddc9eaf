"""AR overlays (facepoints.apps.ar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facepoints.apps import align, ar, pose
from facepoints.apps.points import eye_distance
from facepoints.schemes import load_scheme
from tests.helpers import apply, similarity
from tests.helpers import changed as _changed

ROOT = Path(__file__).resolve().parents[2]
FLIP = load_scheme("ibug68").flip_permutation()
runner = CliRunner()


# ---------------------------------------------------------------- AR overlays



def test_effects_sit_on_each_face_scale_with_it_and_turn_with_roll() -> None:
    size = (900, 500)
    small = pose.project_model(0, 0, 0, size, centre=(220, 250), distance_mm=1400)
    big_rolled = pose.project_model(0, 0, 30, size, centre=(620, 250), distance_mm=700)
    canvas = np.full((size[1], size[0], 3), 200, np.uint8)
    out = ar.apply_effect(canvas, [small, big_rolled], "glasses")
    assert np.all(canvas == 200), "the input is not modified"
    mask = _changed(out, canvas)
    left, right = mask[:, :450], mask[:, 450:]
    assert left.sum() > 500 and right.sum() > 3 * left.sum(), "two faces, area grows with face size (2x -> ~4x)"
    for pts, m, x_off in ((small, left, 0), (big_rolled, right, 450)):
        ys, xs = np.nonzero(m)
        eyes = align.five_points(pts)[:2].mean(axis=0)
        assert np.linalg.norm(np.array([xs.mean() + x_off, ys.mean()]) - eyes) < 0.15 * eye_distance(pts)
    ys, xs = np.nonzero(right)
    cov = np.cov(np.stack([xs, ys]))
    angle = np.degrees(0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1]))
    assert angle == pytest.approx(30, abs=4), "the glasses turn with the head's roll"


def test_moustache_sits_between_nose_and_mouth() -> None:
    size = (640, 480)
    pts = pose.project_model(0, 0, -15, size, distance_mm=500)
    canvas = np.full((size[1], size[0], 3), 200, np.uint8)
    ys, xs = np.nonzero(_changed(ar.apply_effect(canvas, [pts], "moustache"), canvas))
    assert len(xs) > 300
    centre = np.array([xs.mean(), ys.mean()])
    lip = (pts[33] + pts[51]) / 2
    assert np.linalg.norm(centre - lip) < 0.1 * eye_distance(pts)
    assert ys.max() < pts[57, 1] and ys.min() > pts[28, 1], "below the nose bridge, above the lower lip"


def test_effects_registry_and_errors(astronaut) -> None:
    image, pts = astronaut
    assert set(ar.EFFECTS) >= {"glasses", "moustache"}
    assert np.array_equal(ar.apply_effect(image, [], "glasses"), image)
    with pytest.raises(ValueError, match="glasses"):
        ar.apply_effect(image, [pts], "hat")
    rgba, anchors = ar.glasses_art()
    assert rgba.shape[2] == 4 and rgba[..., 3].max() == 255 and rgba[..., 3].min() == 0 and anchors.shape == (2, 2)
    out = ar.apply_effect(image, [pts, apply(similarity(0, 1, (-400, 0)), pts)], "moustache")  # half off the photo
    assert out.shape == image.shape


