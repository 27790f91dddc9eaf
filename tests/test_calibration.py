"""Score calibration: monotone, right on data with a known answer, stored in the card, calibrated on real faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facepoints.calibration import (
    CalibrationError,
    MonotoneMap,
    ScoreCalibration,
    auroc,
    choose_threshold,
    expected_calibration_error,
    face_nme_of,
    fit_calibration,
    fit_isotonic,
    point_hits,
    pool_adjacent_violators,
)
from facepoints.card import ModelCard

K = 6


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores in [0, 1] whose true hit probability is raw ** 2 (and 0.5 + raw / 2 for the last two points)."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0, 1, (n, K))
    p = raw ** 2
    p[:, 4:] = 0.5 + raw[:, 4:] / 2
    hit = rng.uniform(0, 1, (n, K)) < p
    err = np.where(hit, 0.01, 0.2)  # hits are within the 5 % tolerance, misses far outside
    return raw, err


def _fitted(seed: int = 0, regions: dict | None = None) -> ScoreCalibration:
    raw, err = _synthetic(4000, seed)
    return fit_calibration(raw, err, raw, err, regions or {"all": list(range(K))}, min_block=50)


def test_pool_adjacent_violators_gives_the_isotonic_least_squares_fit() -> None:
    starts, ends, values = pool_adjacent_violators(np.array([1.0, 3.0, 2.0, 4.0, 0.0]), np.ones(5))
    fitted = np.repeat(values, ends - starts)
    assert np.allclose(fitted, [1.0, 2.25, 2.25, 2.25, 2.25])  # 3,2 pool to 2.5; then 4,0 to 2; then all four


def test_isotonic_map_is_monotone_on_noisy_non_monotone_data() -> None:
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 1, 5000)
    truth = 0.5 + 0.4 * np.sin(6 * raw)  # rises, falls, rises: the best monotone fit must pool the dip
    m = fit_isotonic(raw, rng.uniform(0, 1, 5000) < truth, min_block=20)
    grid = np.linspace(-0.5, 1.5, 400)
    assert (np.diff(m(grid)) >= 0).all()
    assert (np.diff(m.x) > 0).all()
    assert 0 <= min(m.y) and max(m.y) <= 1


def test_calibration_recovers_a_known_probability_and_removes_the_calibration_error() -> None:
    cal = _fitted(0, {"a": [0, 1, 2, 3], "b": [4, 5]})
    grid = np.linspace(0.1, 0.9, 9)
    prob = cal.point_probabilities(np.repeat(grid[:, None], K, axis=1))
    assert np.abs(prob[:, 0] - grid ** 2).max() < 0.06
    assert np.abs(prob[:, 5] - (0.5 + grid / 2)).max() < 0.06
    raw, err = _synthetic(4000, seed=7)  # fresh draws: not the ones fitted on
    hits = (err < 0.05).astype(float)
    assert expected_calibration_error(raw[:, :4], hits[:, :4]) > 0.1  # mean |x - x^2| = 1/6
    assert expected_calibration_error(cal.point_probabilities(raw), hits) < 0.02


def test_a_score_without_signal_gives_a_flat_map_at_the_base_rate() -> None:
    rng = np.random.default_rng(2)
    m = fit_isotonic(rng.uniform(0, 1, 4000), rng.uniform(0, 1, 4000) < 0.3, min_block=100)
    values = m(np.linspace(0, 1, 50))
    assert values.max() - values.min() < 0.1
    assert abs(values.mean() - 0.3) < 0.05


def test_face_score_separates_failed_faces_and_threshold_respects_the_false_flag_budget() -> None:
    rng = np.random.default_rng(3)
    quality = rng.uniform(0, 1, 600)  # per face; bad faces get low raw scores and large errors
    raw = np.clip(quality[:, None] + rng.normal(0, 0.1, (600, K)), 0, 1)
    err = np.abs(rng.normal(0, 0.02 + 0.3 * (1 - quality[:, None]) ** 3, (600, K)))
    cal = fit_calibration(raw, err, raw, err, {"all": list(range(K))}, max_false_flag=0.05, min_block=30)
    face = cal.face_scores(cal.point_probabilities(raw))
    failed = face_nme_of(err) >= 0.10
    assert failed.sum() > 20 and auroc(-face, failed) > 0.9
    flagged = cal.doubtful(face)
    assert (flagged & ~failed).sum() / (~failed).sum() <= 0.05 + 1e-9
    assert (flagged & failed).sum() > 0.5 * failed.sum()


def test_choose_threshold_picks_the_separating_cut() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    good = np.array([False, False, False, True, True, True])
    cut = choose_threshold(scores, good, max_false_flag=0.0)
    assert 0.3 < cut <= 0.7
    assert choose_threshold(scores, np.ones(6, bool)) == 0.5


def test_auroc_counts_pairs_with_ties_as_half() -> None:
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    y = np.array([False, True, False, True, False])
    pairs = [(a, b) for a in s[y] for b in s[~y]]
    expected = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert auroc(s, y) == pytest.approx(expected)


def test_point_hits_use_the_eye_corner_distance_and_skip_unannotated_points() -> None:
    gt = np.zeros((1, 4, 2))
    gt[0, 1] = [100.0, 0.0]  # points 0 and 1 are the "eye corners", 100 px apart
    pred = gt.copy()
    pred[0, 2] += [4.0, 0.0]  # 4 % of the distance: a hit
    pred[0, 3] += [0.0, 6.0]  # 6 %: a miss
    mask = np.array([[True, True, True, False]])
    err, hits = point_hits(pred, gt, mask, (0, 1))
    assert err[0, 2] == pytest.approx(0.04)
    assert hits[0, 2] == 1.0 and np.isnan(hits[0, 3])


def test_calibration_round_trips_through_the_model_card(tmp_path) -> None:
    cal = _fitted(4, {"a": [0, 1, 2, 3], "b": [4, 5]})
    card = ModelCard(name="m", scheme={"name": "x"}, input_size=8, channels=3, context=1.0,
                     score_calibration=cal.to_dict())
    card.write(tmp_path / "m.onnx")
    back = ScoreCalibration.from_dict(ModelCard.for_model(tmp_path / "m.onnx").score_calibration)
    raw = np.random.default_rng(5).uniform(0, 1, (50, K))
    assert np.allclose(back.point_probabilities(raw), cal.point_probabilities(raw), atol=1e-5)
    p = cal.point_probabilities(raw)
    assert np.allclose(back.face_scores(p), cal.face_scores(p), atol=1e-5)
    assert back.doubtful_below == pytest.approx(cal.doubtful_below, abs=1e-6)
    assert json.loads((tmp_path / "m.json").read_text())["score_calibration"]["point_maps"]["b"][0]["x"]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="other/9"), "calibrate_scores"),
    (lambda d: d["point_maps"]["all"][0].update(y=list(reversed(d["point_maps"]["all"][0]["y"]))), "non-decreasing"),
    (lambda d: d.update(regions={"all": [0, 1, 1, 3, 4, 5]}), "cover points"),
    (lambda d: d.pop("face_map"), "lacks face_map"),
    (lambda d: d.update(detector_thresholds={"facepoints": 1.5}), "detector_thresholds"),
])
def test_a_broken_calibration_is_refused_with_a_clear_message(change, message) -> None:
    d = json.loads(json.dumps(_fitted().to_dict()))
    change(d)
    with pytest.raises(CalibrationError, match=message):
        ScoreCalibration.from_dict(d)


def test_a_detector_threshold_chosen_under_the_cut_applies_only_while_that_cut_holds() -> None:
    d = _fitted().to_dict() | {"not_a_face_below": 0.02, "detector_thresholds": {"FacePoints": 0.3}}
    cal = ScoreCalibration.from_dict(json.loads(json.dumps(d)))
    assert cal.detector_threshold("facepoints", 0.02) == pytest.approx(0.3)
    assert cal.detector_threshold("facepoints", 0.5) == pytest.approx(0.3)  # a stricter cut lets fewer through
    assert cal.detector_threshold("facepoints", 0.0) is None  # every detection kept: the detector's own threshold
    assert cal.detector_threshold("haar", 0.02) is None
    assert ScoreCalibration.from_dict(cal.to_dict()).detector_thresholds == {"facepoints": 0.3}


def test_scores_for_another_number_of_points_are_refused() -> None:
    with pytest.raises(CalibrationError, match="6 points"):
        _fitted().point_probabilities(np.zeros((2, 68)))


def test_monotone_map_maps_nan_to_its_lowest_value() -> None:
    m = MonotoneMap([0.1, 0.5], [0.2, 0.9])
    assert np.allclose(m(np.array([np.nan, 0.0, 0.3, 2.0])), [0.2, 0.2, 0.55, 0.9])


# ---------------------------------------------------------------- real faces


def _raw_scores_and_errors(model, samples) -> tuple[np.ndarray, np.ndarray]:
    from facepoints.geometry import tight_box

    preds, raws = [], []
    for s in samples:
        p, sc = model.landmarks_with_scores(s.image, tight_box(s.points, s.mask)[None])
        preds.append(p[0])
        raws.append(sc[0])
    gt, mask = np.stack([s.points for s in samples]), np.stack([s.mask for s in samples])
    err, _ = point_hits(np.stack(preds), gt, mask, (36, 45))
    return np.stack(raws), err


def test_shipped_model_scores_are_calibrated_on_held_out_faces(real_data) -> None:
    """The shipped card's calibration, fitted on validation faces, holds on YouTube-Faces test and flags AFW
    failures."""
    from facepoints.datasets import load_dataset
    from facepoints.inference import LandmarkModel, resolve_model

    path = resolve_model("default")
    stored = ModelCard.for_model(path).score_calibration
    assert stored, ("the shipped default model's card has no score_calibration: run "
                    "python benchmarks/calibrate_scores.py --model facepoints/weights/default.onnx --write-card")
    cal = ScoreCalibration.from_dict(stored)
    model = LandmarkModel(path, threads=1)
    model.calibration = None  # raw scores: the calibration is applied here, explicitly
    in_markup = LandmarkModel(path, threads=1, convention="youtube")  # each test set in its own markup
    in_markup.calibration = None
    yt = load_dataset(str(real_data / "youtube-faces-68" / "test_frames_keypoints.csv"), progress=False)[0][::2]
    raw, err = _raw_scores_and_errors(in_markup, yt)
    hits = (err < cal.tolerance).astype(float)
    assert expected_calibration_error(raw, hits) > 0.2  # the raw head output is no probability ...
    assert expected_calibration_error(cal.point_probabilities(raw), hits) < 0.09  # ... the calibrated one is
    afw = load_dataset(str(real_data / "300w-68" / "afw"), progress=False)[0]
    raw, err = _raw_scores_and_errors(model, afw)
    hits = (err < cal.tolerance).astype(float)
    assert expected_calibration_error(cal.point_probabilities(raw), hits) < 0.08  # in-the-wild photos: looser
    face = cal.face_scores(cal.point_probabilities(raw))
    failed = face_nme_of(err) >= cal.face_nme
    assert failed.sum() >= 3
    assert auroc(-face, failed) > 0.85
    assert expected_calibration_error(face, (~failed).astype(float)) < 0.06


def test_stratified_probabilities_blend_the_two_bracketing_strata_per_face() -> None:
    """The batched path against a per-face, per-point reading of the rule (NaN scores count as the lowest)."""
    rng = np.random.default_rng(7)

    def maps() -> list[MonotoneMap]:
        return [MonotoneMap([0.0, 1.0], [lo, hi]) for lo, hi in ((0.0, 0.3), (0.2, 0.7), (0.5, 1.0))]

    cal = ScoreCalibration(regions={"a": [0, 2, 4], "b": [1, 3, 5]}, point_maps={"a": maps(), "b": maps()[::-1]},
                           face_map=MonotoneMap([0.0, 1.0], [0.0, 1.0]), doubtful_below=0.5,
                           strata=[0.2, 0.5, 0.8])
    raw = rng.uniform(0, 1, (40, K))
    raw[3, 2] = np.nan
    got = cal.point_probabilities(raw)
    for i, face in enumerate(raw):
        mean = face.mean()
        pos = 0.0 if np.isnan(mean) else float(np.clip((mean - 0.2) / 0.3, 0.0, 2.0))
        lo = min(int(pos), 1)
        for k, r in enumerate(face):
            region = "a" if k % 2 == 0 else "b"
            r = -np.inf if np.isnan(r) else r
            want = ((1 - (pos - lo)) * cal.point_maps[region][lo](np.array(r))
                    + (pos - lo) * cal.point_maps[region][lo + 1](np.array(r)))
            assert got[i, k] == pytest.approx(float(want), abs=1e-12)
