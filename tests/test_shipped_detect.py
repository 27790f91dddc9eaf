"""The shipped models on real photos: detect's re-crops, duplicates and not-a-face cut, batches of photos,
flip averaging, and one model shared by threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepoints.inference import Face, load, read_image


def test_recrops_skip_faces_whose_crop_would_barely_move(real_data: Path) -> None:
    """refine_tol saves landmark passes, not accuracy: a face whose next crop would be (nearly) the same pixels
    keeps its points, and a tolerance no crop reaches gives the single-pass answer."""
    from facepoints.images import read_image

    image = read_image(sorted((real_data / "300w-68" / "afw-scenes" / "images").glob("*.jpg"))[0])

    def run(**kw) -> tuple[list[Face], int]:
        model = load(**kw)
        return model.detect(image), model.crops_run

    (every, n_every), (default, n_default) = run(refine_tol=0), run()
    (frozen, n_frozen), (single, _) = run(refine_tol=0.99), run(refine=0)
    n = len(every)  # n_frozen: one crop per detection, faces and not-faces alike
    assert n >= 1 and n_every == 3 * n_frozen and n_frozen <= n_default < n_every
    assert len(default) == n and len(frozen) == len(single)
    for a, b in zip(every, default):
        eye = np.linalg.norm(a.points[36] - a.points[45])
        assert np.abs(a.points - b.points).max() < 0.05 * eye  # a skipped re-crop barely moves a point
    for c, d in zip(frozen, single):
        assert np.allclose(c.points, d.points, atol=1e-4)
    with pytest.raises(ValueError, match="refine_tol"):
        load(refine_tol=1.5)


def test_two_detections_of_one_face_give_one_face(real_data: Path) -> None:
    """Two boxes of one face, too different for the detector's NMS (IoU 0.45), re-crop onto the same points."""
    from facepoints.datasets import load_dataset
    from facepoints.detectors.base import Detection
    from facepoints.detectors.cnn import BOX_MAP_KEY

    sample = load_dataset(str(real_data / "300w-68" / "afw"), progress=False)[0][0]
    x0, y0 = np.nanmin(sample.points, axis=0)
    x1, y1 = np.nanmax(sample.points, axis=0)
    w, h = x1 - x0, y1 - y0
    dets = [Detection(np.array([x0, y0, x1, y1]), 0.9, BOX_MAP_KEY),
            Detection(np.array([x0 + 0.2 * w, y0 + 0.2 * h, x1 + 0.2 * w, y1 + 0.2 * h]), 0.8, BOX_MAP_KEY)]
    one = load().detect_many([sample.image], [dets])[0]
    both = load(duplicate_iou=1.0).detect_many([sample.image], [dets])[0]
    assert len(both) == 2 and len(one) == 1
    assert one[0].detection_score == 0.9 and np.allclose(one[0].points, both[0].points)
    with pytest.raises(ValueError, match="duplicate_iou"):
        load(duplicate_iou=0)


def test_one_model_shared_by_8_threads_gives_the_single_threaded_answers() -> None:
    """Before the lock, 8 threads got 3 right answers out of 80 (others: cv2.error, 0 or 17 faces)."""
    from concurrent.futures import ThreadPoolExecutor

    from facepoints.cli import sample_image_path

    model = load(threads=1)
    photo = read_image(sample_image_path())
    images = [photo, np.ascontiguousarray(photo[:, ::-1]), np.ascontiguousarray(photo[40:, 20:])]
    expected = [model.detect(im) for im in images]
    jobs = [i % len(images) for i in range(8 * 12)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: (i, model.detect(images[i])), jobs))
    for i, faces in answers:
        assert len(faces) == len(expected[i])
        for got, want in zip(faces, expected[i]):
            assert np.array_equal(got.points, want.points) and np.array_equal(got.box, want.box)


def test_points_alone_equal_the_points_of_landmarks_with_scores(real_data: Path) -> None:
    """``landmarks`` skips the score calibration; the points must not change."""
    from facepoints.datasets import load_dataset

    sample = load_dataset(str(real_data / "300w-68" / "afw"), progress=False)[0][0]
    model = load()
    boxes = np.concatenate([np.nanmin(sample.points, axis=0), np.nanmax(sample.points, axis=0)])[None]
    points, scores = model.landmarks_with_scores(sample.image, boxes)
    assert np.array_equal(model.landmarks(sample.image, boxes), points)
    assert scores.shape == (1, 68) and (scores >= 0).all() and (scores <= 1).all()


def test_detect_many_batches_photos_and_gives_each_photo_its_own_faces(real_data: Path) -> None:
    from facepoints.images import read_image

    photos = sorted((real_data / "300w-68" / "afw-scenes" / "images").glob("*.jpg"))[:4]
    images = [read_image(p) for p in photos]
    model = load()
    one_by_one = [model.detect(img) for img in images]
    together = model.detect_many(images)
    assert [len(f) for f in together] == [len(f) for f in one_by_one] and sum(map(len, together)) >= 4
    for a, b in zip(one_by_one, together):
        for fa, fb in zip(a, b):
            assert np.allclose(fa.points, fb.points, atol=1e-3) and np.allclose(fa.box, fb.box, atol=1e-3)


def test_flip_averaging_lowers_the_error_on_real_faces(real_data: Path) -> None:
    """A wrong mirror (offset, left/right swap or x map) would raise the error instead."""
    from facepoints.datasets import load_dataset
    from facepoints.metrics import nme

    samples = load_dataset(str(real_data / "300w-68" / "afw"), progress=False)[0][:40]
    errors = {}
    for flip in (False, True):
        model = load(flip_average=flip)
        errors[flip] = np.mean([
            nme(model.landmarks(s.image, np.concatenate([np.nanmin(s.points, 0), np.nanmax(s.points, 0)])[None]),
                s.points[None], s.mask[None], (36, 45))[0] for s in samples])
    assert errors[True] < errors[False] - 0.0005


def test_flip_averaging_reaches_the_batch_workers_and_the_cli(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from facepoints.batch import _model_spec
    from facepoints.cli import app, sample_image_path

    assert _model_spec(load(flip_average=True))[1]["flip_average"] is True
    runs = {}
    for flag in ("--flip-average", "--no-flip-average"):
        out = tmp_path / flag
        res = CliRunner().invoke(app, ["detect", str(sample_image_path()), "--out", str(out), "--workers", "1",
                                       "--no-draw", flag])
        assert res.exit_code == 0, res.output
        runs[flag] = np.array(json.loads((out / "results.json").read_text())["images"][0]["faces"][0]["points"])
    shift = np.abs(runs["--flip-average"] - runs["--no-flip-average"]).max()
    assert 0.01 < shift < 10  # a different, nearby answer


def test_detections_whose_points_are_not_a_face_are_dropped_at_the_cut(real_data: Path) -> None:
    from facepoints.batch import _model_spec
    from facepoints.detectors import build_detector
    from facepoints.images import read_image

    default = load()
    assert default.min_face_score == default.calibration.not_a_face_below
    photo = read_image(sorted((real_data / "300w-68" / "afw-scenes" / "images").glob("*.jpg"))[0])
    loose = build_detector("facepoints", threshold=0.05)  # many boxes, some of them not faces
    # duplicates kept: a not-a-face detection must not merge away a face before the cut drops it
    every = load(detector=loose, min_face_score=0.0, duplicate_iou=1.0).detect(photo)
    scores = sorted(f.face_score for f in every)
    assert len(every) >= 3 and scores[0] < scores[-1]
    cut = (scores[0] + scores[-1]) / 2
    kept = load(detector=loose, min_face_score=cut, duplicate_iou=1.0).detect(photo)
    want = [f for f in every if f.face_score >= cut]
    assert 0 < len(kept) == len(want) < len(every)
    assert all(np.allclose(a.points, b.points) for a, b in zip(kept, want))
    assert _model_spec(load(min_face_score=0.25))[1]["min_face_score"] == 0.25
    with pytest.raises(ValueError, match="min_face_score"):
        load(min_face_score=1.5)


def test_a_detector_built_by_name_gets_the_models_thread_budget() -> None:
    """A one-thread batch worker must not run the CNN detector on every core (it thrashed --workers 2)."""
    assert load(threads=1).detector.threads == 1
    assert load(threads=1, detector="haar").detector.threads == 1
    assert load().detector.threads is None  # onnxruntime's own default


@pytest.mark.parametrize("name", ["default", "fast", "accurate"])
def test_the_cnn_runs_at_the_threshold_chosen_under_the_cut_only_while_the_cut_holds(name: str) -> None:
    """With the not-a-face cut behind it the CNN may run lower (benchmarks/results/not_a_face*.md); a user who keeps
    every detection, or brings a detector of their own, gets the detector's own threshold."""
    import json

    from facepoints.batch import _model_spec
    from facepoints.detectors import HaarDetector, build_detector

    model = load(name)
    own = build_detector("facepoints").score_threshold
    stem = "not_a_face" if name == "default" else f"not_a_face_{name}"
    result = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / f"{stem}.json").read_text())
    if result["own_threshold"]:  # its rule's threshold boxed a false face on the sample photo (one_face.py)
        assert model.calibration.detector_thresholds == {} and model.detector.score_threshold == pytest.approx(own)
        return
    chosen = model.calibration.detector_thresholds["facepoints"]
    assert chosen == pytest.approx(result["chosen_detector_thresholds"]["facepoints"], abs=1e-6)
    assert 0.05 <= chosen < own
    assert model.detector.score_threshold == pytest.approx(chosen)
    assert load(name, detector="facepoints", threads=1).detector.score_threshold == pytest.approx(chosen)
    assert load(name, min_face_score=0.0).detector.score_threshold == pytest.approx(own)
    assert load(name, detector=build_detector("facepoints")).detector.score_threshold == pytest.approx(own)
    path, kw = _model_spec(model)  # what a batch worker builds
    assert load(path, **kw).detector.score_threshold == pytest.approx(chosen)
    assert isinstance(load(name, detector="haar").detector, HaarDetector)  # no threshold forced on the others


@pytest.mark.parametrize("name", ["default", "fast", "accurate"])
def test_each_model_finds_just_the_sample_photos_one_face_as_stored_and_as_a_turned_phone_jpeg(
        name: str, capsys: pytest.CaptureFixture) -> None:
    """The check regenerate.sh runs before a model keeps its rule's detector threshold (benchmarks/one_face.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import one_face

    assert one_face.main(name) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.count(": 1 faces") == 2


def test_detects_tuning_constants_are_the_ones_chosen_on_held_out_photos() -> None:
    """The re-crop tolerance and duplicate IoU are chosen by benchmarks on held-out photos; a rerun that chose
    another value must move the constant too (and the published detection figures with it)."""
    import json

    from facepoints.refine import DUPLICATE_IOU, REFINE_TOL

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

    def chosen(name: str, key: str) -> float:
        return json.loads((results / f"{name}.json").read_text(encoding="utf-8"))[key]

    assert DUPLICATE_IOU == chosen("duplicates", "chosen_duplicate_iou")
    assert REFINE_TOL == chosen("detected_boxes_validation", "chosen_refine_tol")
