"""The face verifier: labelling of mined candidates, the score combination, a tiny mine/train/export round trip
and the detector running it from its card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepoints.detectors import CnnDetector
from facepoints.detectors.cnn import default_model_path
from facepoints.detectors.verifier import FaceVerifier, combine
from facepoints.verifier_train import (
    CandidateDataset,
    Candidates,
    export_verifier,
    label_candidates,
    load_verifier_config,
    train_verifier,
)

ROOT = Path(__file__).resolve().parents[1]


def test_combine_weights_the_two_scores_geometrically() -> None:
    d, v = np.array([0.9, 0.2, 0.6]), np.array([0.1, 0.8, 0.6])
    assert np.allclose(combine(d, v, 0.0), d) and np.allclose(combine(d, v, 1.0), v)
    assert np.allclose(combine(d, v, 0.5), np.sqrt(d * v))
    assert combine(np.array([0.0]), np.array([1.0]), 0.5)[0] < 1e-3  # a zero is not log(0)


def test_candidates_are_faces_background_or_left_out() -> None:
    faces = np.array([[0.0, 0.0, 100.0, 100.0]])
    ignore = np.array([[300.0, 300.0, 360.0, 360.0]])
    boxes = np.array([[5.0, 5.0, 100.0, 100.0],  # IoU 0.9: a face
                      [50.0, 50.0, 150.0, 150.0],  # IoU 0.14: background
                      [30.0, 0.0, 130.0, 100.0],  # IoU 0.54: a face
                      [40.0, 0.0, 140.0, 100.0],  # IoU 0.43: too close to call, dropped
                      [305.0, 305.0, 360.0, 360.0],  # an unannotated face: dropped
                      [500.0, 500.0, 540.0, 540.0]])  # background
    assert label_candidates(boxes, faces, ignore).tolist() == [1, 0, 1, -1, -1, 0]


@pytest.mark.parametrize("grey_p", [0.0, 1.0])
def test_training_crops_turn_black_and_white_as_often_as_grey_p_says(grey_p: float) -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (6, 96, 96, 3), dtype=np.uint8)
    crops[..., 0] //= 4  # coloured: red far from green and blue
    cands = Candidates(crops, np.tile([30.0, 30.0, 66.0, 66.0], (6, 1)), np.ones(6), np.ones(6))
    cfg = load_verifier_config(None, ["augment.photometric_p=1.0", f"augment.grey_p={grey_p}"])
    xs = [x for x, _ in CandidateDataset(cands, cfg, train=True)]
    grey = [bool(np.allclose(x[0], x[1]) and np.allclose(x[1], x[2])) for x in xs]
    assert grey == [grey_p == 1.0] * 6


@pytest.fixture
def tiny_verifier(tmp_path: Path, real_data: Path) -> Path:
    det_cfg = tmp_path / "det.yaml"
    det_cfg.write_text(f"base: {ROOT / 'configs' / 'detector_wide.yaml'}\nout_dir: {tmp_path / 'det'}\n"
                       "data:\n  max_photos: 60\n", encoding="utf-8")
    cfg = load_verifier_config(ROOT / "configs" / "verifier.yaml", [
        f"out_dir={tmp_path / 'run'}", f"data.detector_config={det_cfg}", "data.composed_scenes=12",
        "data.val_composed_scenes=6", "optim.epochs=2", "optim.batch_size=16", "workers=0", "threads=1"])
    best = train_verifier(cfg, progress=False)
    return export_verifier(best, tmp_path / "verifier.onnx")


def test_mined_verifier_trains_exports_and_scores_crops(tiny_verifier: Path, tmp_path: Path) -> None:
    import torch

    run = tmp_path / "run"
    mined = np.load(run / "mined.npz")
    assert (mined["train_labels"] == 1).sum() > 0 and (mined["train_labels"] == 0).sum() > 0
    assert np.isnan(mined["train_scores"][mined["train_labels"] == 1]).any()  # annotated faces joined the mined ones
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and len(last["history"]) == 2 and "background_kept_at_99" in last["history"][-1]
    card = json.loads(tiny_verifier.with_suffix(".json").read_text())
    assert card["input_size"] == 48 and "train-verifier" in card["retrain"]
    ver = FaceVerifier(tiny_verifier, threads=1)
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    p = ver.probabilities(img, np.array([[10.0, 10.0, 60.0, 70.0], [80.0, 20.0, 150.0, 110.0]]))
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()
    assert ver.probabilities(img, np.zeros((0, 4))).shape == (0,)


def test_detector_runs_its_cards_verifier_and_thresholds_the_combined_score(tiny_verifier: Path,
                                                                              tmp_path: Path) -> None:
    shipped = default_model_path()
    model = tmp_path / "detector.onnx"
    shutil.copy(shipped, model)
    card = json.loads(shipped.with_suffix(".json").read_text())
    card["verifier"] = {"file": tiny_verifier.name, "candidate_threshold": 0.05, "weight": 0.5, "threshold": 0.3}
    model.with_suffix(".json").write_text(json.dumps(card))
    img = cv2.cvtColor(cv2.imread(str(ROOT / "facepoints" / "assets" / "astronaut.jpg")), cv2.COLOR_BGR2RGB)
    plain = CnnDetector(model, threshold=0.05, verify=False, threads=1).detect(img)
    assert len(plain) >= 1  # the astronaut's face at least: the comparison below is not between two empty lists
    with_v = CnnDetector(model, threads=1)
    # a candidate below 0.3^2 could not reach 0.3 even with a verifier score of 1: it is not verified
    assert with_v.score_threshold == 0.3 and with_v.candidate_threshold == pytest.approx(0.09)
    assert CnnDetector(model, threshold=0.1).candidate_threshold == 0.05  # the verifier's training floor
    found = with_v.detect(img)
    v = FaceVerifier(tmp_path / "verifier.onnx").probabilities(img, np.array([d.box for d in plain]).reshape(-1, 4))
    det_scores = np.array([p.score for p in plain])
    expected = combine(det_scores, v, 0.5)[det_scores >= 0.09]
    assert sorted(round(d.score, 5) for d in found) == sorted(round(float(s), 5) for s in expected[expected >= 0.3])
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    assert CnnDetector(model, verify=False).score_threshold == card["threshold"]  # off: the detector's own default
