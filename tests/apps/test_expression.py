"""Expression cues and blinks (facepoints.apps.expression)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facepoints.apps import expression, pose
from facepoints.apps.points import face_size
from facepoints.schemes import load_scheme
from tests.helpers import apply, blinking_eyes, similarity

ROOT = Path(__file__).resolve().parents[2]
FLIP = load_scheme("ibug68").flip_permutation()
runner = CliRunner()


# ---------------------------------------------------------------- expression cues


def test_cues_do_not_depend_on_distance_position_or_roll() -> None:
    pts = pose.project_model(0, 0, 0, (640, 480))
    a = expression.expression_cues(pts).to_dict()
    b = expression.expression_cues(apply(similarity(35, 0.3, (-50, 20), centre=(320, 240)), pts)).to_dict()
    assert a.keys() == b.keys() == {"left_eye_openness", "right_eye_openness", "mouth_openness", "smile_width",
                                    "brow_raise"}
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=1e-3), k


def test_each_cue_measures_its_own_feature() -> None:
    base = pose.project_model(0, 0, 0, (640, 480))
    c0 = expression.expression_cues(base)
    size = face_size(base)

    def changed(edit) -> dict:
        p = base.copy()
        edit(p)
        c = expression.expression_cues(p).to_dict()
        return {k: c[k] - v for k, v in c0.to_dict().items()}

    def open_mouth(p):
        p[[65, 66, 67, 55, 56, 57, 58, 59]] += (0, 0.2 * size)

    def close_left_eye(p):
        p[[43, 44]] = p[[47, 46]]

    def smile(p):
        p[48] -= (0.08 * size, 0.03 * size)
        p[54] += (0.08 * size, -0.03 * size)

    def raise_brows(p):
        p[17:27] -= (0, 0.1 * size)

    d = changed(open_mouth)
    assert d["mouth_openness"] == pytest.approx(0.2, abs=0.01) and abs(d["smile_width"]) < 1e-9
    d = changed(close_left_eye)
    assert d["left_eye_openness"] < -0.8 * c0.left_eye_openness and d["right_eye_openness"] == 0
    d = changed(smile)
    assert d["smile_width"] == pytest.approx(0.16, abs=0.01) and d["mouth_openness"] == 0
    d = changed(raise_brows)
    assert d["brow_raise"] == pytest.approx(0.1, abs=0.005) and d["left_eye_openness"] == 0
    assert c0.left_eye_openness == pytest.approx(c0.right_eye_openness) and 0.2 < c0.left_eye_openness < 0.4


def test_blink_detector_finds_blinks_at_their_frames_and_ignores_long_closures() -> None:
    rng = np.random.default_rng(3)
    o = np.ones(240)
    o[40:44] = 0.15  # blink, 4 frames
    o[100:102] = 0.3  # short blink
    o[150:190] = 0.1  # eyes shut for 40 frames: not a blink
    o[220:223] = 0.2
    det = expression.BlinkDetector()
    events = []
    for i, pts in enumerate(blinking_eyes(o, rng)):
        e = det.update(i, expression.expression_cues(pts).eye_openness)
        if e is not None:
            events.append(e)
        if i == 120:
            assert det.update(121, None) is None  # a frame without the face is fine
    assert [(e.start_frame, e.end_frame) for e in events] == [(40, 43), (100, 101), (220, 222)]
    assert events == det.events and events[0].frames == 4 and events[0].min_openness < 0.1


