"""The runtime reports calibrated scores, a face score and the doubtful flag (docs/scores.md)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from facepoints.calibration import ScoreCalibration
from facepoints.cli import sample_image_path
from facepoints.inference import LandmarkModel, ModelError, load, read_image, resolve_model


@pytest.fixture(scope="module")
def model() -> LandmarkModel:
    return load("default", threads=1)


def test_detect_gives_calibrated_point_scores_and_a_confident_face_score(model) -> None:
    faces = model.detect(read_image(sample_image_path()))
    assert len(faces) == 1
    f = faces[0]
    cal = ScoreCalibration.from_dict(model.card.score_calibration)
    raw_model = load("default", threads=1)
    raw_model.calibration = None
    raw = raw_model.detect(read_image(sample_image_path()))[0]
    assert raw.face_score is None and not np.allclose(raw.scores, f.scores)
    assert np.allclose(f.scores, cal.point_probabilities(raw.scores[None])[0])
    assert f.scores.mean() > 0.5  # the visibly right face: most points within 5 % (raw head output: 0.1-0.3)
    assert f.face_score is not None and f.face_score > cal.doubtful_below and not f.doubtful


def test_landmarks_with_scores_are_calibrated_and_raw_scores_stay_available(model) -> None:
    image = read_image(sample_image_path())
    box = model.detect(image)[0].box
    _, calibrated = model.landmarks_with_scores(image, box[None])
    raw_model = load("default", threads=1)
    raw_model.calibration = None
    _, raw = raw_model.landmarks_with_scores(image, box[None])
    assert np.allclose(calibrated, model.calibration.point_probabilities(raw))
    assert not np.allclose(calibrated, raw)


def test_a_face_in_a_wrong_box_is_flagged_doubtful(model) -> None:
    image = read_image(sample_image_path())
    box = model.detect(image)[0].box
    w = box[2] - box[0]
    off = box + np.array([0.6 * w, 0.5 * w, 0.6 * w, 0.5 * w])  # mostly off the face: the fit cannot be good
    _, scores = model.landmarks_with_scores(image, off[None])
    face = model.calibration.face_scores(scores)
    assert model.calibration.doubtful(face)[0]


def test_a_broken_calibration_in_the_card_stops_loading_with_a_clear_message(tmp_path) -> None:
    src = resolve_model("default")
    dst = tmp_path / "m.onnx"
    shutil.copy(src, dst)
    card = json.loads(src.with_suffix(".json").read_text())
    card["score_calibration"]["face_map"] = {"x": [0.1, 0.2], "y": [0.9, 0.1]}
    dst.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="face_map.*non-decreasing"):
        LandmarkModel(dst)


def test_detect_json_and_csv_carry_face_score_and_doubtful(tmp_path) -> None:
    from typer.testing import CliRunner

    from facepoints.cli import app

    for fmt in ("json", "csv"):
        res = CliRunner().invoke(app, ["detect", "--sample", "--out", str(tmp_path / fmt), "--format", fmt])
        assert res.exit_code == 0, res.output
    face = json.loads((tmp_path / "json" / "results.json").read_text())["images"][0]["faces"][0]
    assert 0.5 < face["face_score"] <= 1 and face["doubtful"] is False
    import pandas as pd

    row = pd.read_csv(tmp_path / "csv" / "results.csv").iloc[0]
    assert row["face_score"] == pytest.approx(face["face_score"]) and row["doubtful"] == 0
