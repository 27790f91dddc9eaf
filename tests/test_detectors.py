"""Every registered face detector keeps the same contract; the CNN is measured on real photos (afw-scenes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facepoints.datasets.wider import WiderError, read_scene_points, read_wider
from facepoints.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    CnnDetector,
    Detection,
    DetectorError,
    box_iou,
    build_detector,
)
from facepoints.detectors.cnn import merge_mirrored, mirrored
from facepoints.detectors.evaluate import photos_from_wider, run_detector
from facepoints.detectors.metrics import average_precision, match_image, summarise
from facepoints.geometry import tight_box
from tests.test_detect import COMPOSITE_FACES, composite, youtube_test_faces


def _build(name: str, **kw):
    if name == "dlib":
        pytest.importorskip("dlib", reason="the dlib detector is the optional extra facepoints[dlib]")
    return build_detector(name, **kw)


@pytest.fixture(scope="module")
def three_faces(real_data: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    return composite(youtube_test_faces(real_data, COMPOSITE_FACES))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_finds_each_face_with_a_tight_box_best_first(name: str, three_faces) -> None:
    image, truths = three_faces
    det = _build(name)
    found = det.detect(image)
    assert all(isinstance(d, Detection) and d.box.shape == (4,) and np.isfinite(d.box).all() for d in found)
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    boxes = det.box_maps.apply(found)  # every backend maps to the landmark model's tight box
    iou = box_iou(boxes, np.stack([tight_box(p) for p in truths]))
    assert len(found) == 3
    assert (iou.max(axis=0) >= 0.5).all(), iou
    assert sorted(iou.argmax(axis=0).tolist()) == [0, 1, 2]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_finds_nothing_on_a_blank_photo_and_takes_grey_images(name: str, three_faces) -> None:
    det = _build(name)
    assert det.detect(np.full((240, 320, 3), 127, np.uint8)) == []
    assert det.detect(np.zeros((0, 0, 3), np.uint8)) == []
    grey = three_faces[0].mean(axis=2).astype(np.uint8)
    assert len(det.detect(grey)) >= 1  # the CNN saw few grey scenes in training: it finds 1 of the 3 here
    with pytest.raises(DetectorError, match="uint8"):
        det.detect(np.zeros((50, 50, 3), np.float32))


def test_unknown_detector_names_and_options_say_what_exists() -> None:
    with pytest.raises(DetectorError, match="facepoints, haar, dlib"):
        build_detector("retinaface")
    with pytest.raises(DetectorError, match="bad option"):
        build_detector("haar", upsample=2)
    with pytest.raises(DetectorError, match="min_face"):
        build_detector("facepoints", min_face=0)
    assert DEFAULT_DETECTOR in DETECTORS


def test_a_detector_exported_by_an_earlier_version_says_to_export_it_again(tmp_path: Path) -> None:
    shipped = Path(CnnDetector(threads=1).path)
    card = json.loads(shipped.with_suffix(".json").read_text())
    (tmp_path / "old.onnx").write_bytes(shipped.read_bytes())
    (tmp_path / "old.json").write_text(json.dumps({**card, "format": "facepoints-detector/1"}))
    with pytest.raises(DetectorError, match="export-detector CHECKPOINT"):
        CnnDetector(tmp_path / "old.onnx")
    (tmp_path / "old.json").write_text(json.dumps({**card, "format": "something else"}))
    with pytest.raises(DetectorError, match="not a facepoints-detector/2 sidecar"):
        CnnDetector(tmp_path / "old.onnx")


def test_cnn_threshold_and_min_face_options(three_faces) -> None:
    image, _ = three_faces
    det = CnnDetector(threads=1)
    assert 0.0 < det.score_threshold < 1.0  # the model card's default
    assert CnnDetector(threshold=1.0).detect(image) == []
    # the default runs the photo at its own scale; min_face=20 halves it (smaller input, faster)
    coarse = CnnDetector(min_face=20.0, threads=1)
    assert det.scale_for(*image.shape[1::-1]) == pytest.approx(2 * coarse.scale_for(*image.shape[1::-1]))
    assert len(det.detect(image)) == 3


def test_nms_keeps_what_greedy_suppression_by_the_book_keeps() -> None:
    """The detector's NMS runs on hundreds of candidates per photo (flip keeps them down to a low score), so it
    runs in OpenCV; here it must agree with the plain definition, ties, empty boxes and the limit included."""
    from facepoints.detectors import nms

    def by_the_book(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> list[int]:
        order, keep = list(np.argsort(-scores, kind="stable")), []
        while order and len(keep) < limit:
            keep.append(int(order.pop(0)))
            order = [j for j in order if box_iou(boxes[keep[-1]], boxes[j])[0, 0] <= iou]
        return keep

    rng = np.random.default_rng(0)
    for trial in range(45):
        n = int(rng.integers(0, 250))
        corner = rng.uniform(0, 300, (n, 2))
        size = rng.uniform(0, 80, (n, 2)) * (rng.random((n, 1)) > 0.05) * (rng.random((n, 2)) > 0.02)  # empty
        boxes, scores = np.concatenate([corner, corner + size], 1), rng.uniform(0, 1, n).round(1)  # many ties
        limit = int(rng.integers(1, 20)) if trial % 3 == 0 else 300
        assert nms(boxes, scores, 0.4, limit).tolist() == by_the_book(boxes, scores, 0.4, limit)


def test_mirrored_candidates_come_back_in_the_photos_pixels_with_left_and_right_swapped() -> None:
    boxes = np.array([[10.0, 20.0, 50.0, 70.0]])
    points = np.array([[[20.0, 40.0], [40.0, 40.0], [30.0, 50.0], [22.0, 60.0], [38.0, 60.0]]])
    mb, ms, mp = mirrored((boxes, np.array([0.9]), points), width=100)
    np.testing.assert_allclose(mb, [[49.0, 20.0, 89.0, 70.0]])
    np.testing.assert_allclose(mp[0, 0], [59.0, 40.0])  # the left eye of the mirror is the photo's right eye
    back = mirrored((mb, ms, mp), width=100)
    np.testing.assert_allclose(back[0], boxes) and np.testing.assert_allclose(back[2], points)


def test_merging_the_two_looks_averages_a_pair_and_halves_a_face_seen_once() -> None:
    a = (np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]]), np.array([0.8, 0.6]), np.zeros((2, 0, 2)))
    b = (np.array([[1.0, 0.0, 11.0, 10.0], [100.0, 0.0, 110.0, 10.0]]), np.array([0.4, 0.9]), np.zeros((2, 0, 2)))
    boxes, scores, points = merge_mirrored(a, b)
    np.testing.assert_allclose(scores, [0.6, 0.3, 0.45])
    np.testing.assert_allclose(boxes[0], [0.5, 0.0, 10.5, 10.0])
    assert points.shape == (3, 0, 2)
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))
    assert len(merge_mirrored(empty, empty)[0]) == 0


def test_with_flip_the_cnn_answers_a_mirrored_photo_with_mirrored_faces(three_faces) -> None:
    image, truths = three_faces
    det = CnnDetector(threads=1, flip=True)
    found, seen = det.detect(image), det.detect(np.ascontiguousarray(image[:, ::-1]))
    assert len(found) == len(seen) == 3
    back = mirrored((np.array([d.box for d in seen]), np.zeros(3), np.zeros((3, 0, 2))), image.shape[1])[0]
    iou = box_iou(np.array([d.box for d in found]), back)
    assert (iou.max(axis=1) > 0.9).all(), iou  # the same faces, up to the stride padding on the right
    plain = CnnDetector(threads=1, flip=False).detect(image)
    assert len(plain) == 3 and {d.score for d in plain} != {d.score for d in found}


def test_the_mirrored_look_is_exactly_the_network_run_on_the_mirrored_photo(three_faces) -> None:
    image = np.ascontiguousarray(three_faces[0][:, 3:])  # a width off the stride, so the padding side matters
    det = CnnDetector(threads=1)
    h, w = image.shape[:2]
    looked = det._run_level(image, w, h, 0.05, mirror=True)
    direct = det._run_level(np.ascontiguousarray(image[:, ::-1]), w, h, 0.05)
    assert len(looked[1]) > 0
    for a, b in zip(looked, direct):
        np.testing.assert_array_equal(a, b)


def test_load_takes_a_detector_name(three_faces) -> None:
    import facepoints

    image, truths = three_faces
    model = facepoints.load(detector="haar")
    assert type(model.detector).__name__ == "FaceDetector"
    faces = facepoints.load(threads=1).detect(image)  # the default detector
    assert isinstance(facepoints.load().detector, DETECTORS[DEFAULT_DETECTOR])
    iou = box_iou(np.stack([f.box for f in faces]), np.stack([tight_box(p) for p in truths]))
    assert len(faces) == 3 and (iou.max(axis=0) > 0.6).all()
    with pytest.raises(DetectorError, match="unknown detector"):
        facepoints.load(detector="nope")


def test_the_cnn_runtime_never_imports_torch() -> None:
    code = ("import sys, numpy as np; from facepoints.detectors import build_detector; "
            "build_detector('facepoints').detect(np.zeros((64, 64, 3), np.uint8)); sys.exit('torch' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], check=False, cwd=root).returncode == 0


# ---------------------------------------------------------------- WIDER FACE format and metrics


def test_wider_reader_handles_empty_images_and_the_invalid_flag(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    text = ("a/1.jpg\n2\n10 20 30 40 0 0 0 0 0 0\n50 60 10 10 2 0 0 1 0 0\n"
            "a/2.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n"
            "a/3.jpg\n1\n5 5 8 9 0 0 0 0 0 0\n")
    ann = tmp_path / "wider_face_val_bbx_gt.txt"
    ann.write_text(text)
    images = read_wider(ann)
    assert [im.file for im in images] == ["a/1.jpg", "a/2.jpg", "a/3.jpg"]
    assert np.array_equal(images[0].faces, [[10, 20, 40, 60]])
    assert np.array_equal(images[0].ignore, [[50, 60, 60, 70]])
    assert images[0].attributes["blur"].tolist() == [0, 2]
    assert len(images[1].boxes) == 0 and len(images[2].faces) == 1
    ann.write_text("a/1.jpg\nthree\n")
    with pytest.raises(WiderError, match="face count"):
        read_wider(ann)


def test_afw_scenes_annotations_and_points_agree(real_data: Path) -> None:
    images = read_wider(real_data / "300w-68/afw-scenes/afw_scenes_bbx_gt.txt")
    assert len(images) == 185 and sum(len(i.faces) for i in images) == 337
    assert sum(len(i.ignore) for i in images) == 60 and all(i.path.is_file() for i in images)
    for im in images[:20]:
        for pts, box in zip(read_scene_points(im), im.faces):
            assert np.abs(tight_box(pts) - box).max() <= 1.0  # the boxes are the tight boxes of the points


def test_matching_counts_ignored_boxes_neither_way() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    ign = np.array([[50, 50, 60, 60]], float)
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 61], [80, 80, 90, 90], [1, 1, 10, 10]], float)
    r = match_image(boxes, np.array([0.9, 0.8, 0.7, 0.6]), gt, ign)
    assert r.outcome.tolist() == [1, -1, 0, 0]  # a second box on a matched face is a false positive
    s = summarise([r], 0.65)
    assert (s.found, s.false_positives, s.recall) == (1, 1, 0.5)
    perfect = match_image(gt, np.array([0.9, 0.8]), gt)
    assert average_precision([perfect]) == pytest.approx(1.0)


# ---------------------------------------------------------------- real photos: afw-scenes (a test set)


@pytest.fixture(scope="module")
def afw_scenes(real_data: Path):
    photos, skipped = photos_from_wider(real_data / "300w-68/afw-scenes/afw_scenes_bbx_gt.txt")
    assert not skipped and len(photos) == 185
    return photos


def test_the_cnn_finds_faces_in_real_photos_and_rolled_faces_haar_misses(afw_scenes, real_data: Path) -> None:
    det = CnnDetector(threads=1)
    cnn = summarise(run_detector("facepoints", det, afw_scenes).results, det.score_threshold)
    # the shipped detector, pyramid, mirrored look and verifier (benchmarks/results/detection.md: 327 of 337 found,
    # 64 false; AP 0.962 over the boxes kept at its threshold, 0.980 in detection.md over every box down to 0.02)
    # with a little room: shipping a worse detector or verifier turns this red
    assert cnn.faces == 337 and cnn.found >= 323 and cnn.false_positives <= 71 and cnn.ap >= 0.953, cnn
    rolled = afw_rotated(real_data, 45.0, every=6)
    ours = summarise(run_detector("facepoints", CnnDetector(threads=1), rolled).results, 0.0)
    assert ours.recall >= 0.96, ours  # 57 of 57 (without the mirrored look 56; the previous, narrower detector 52)
    haar = summarise(run_detector("haar", build_detector("haar"), rolled).results, -1e9)
    assert ours.recall >= haar.recall + 0.2, (ours, haar)


def test_what_detect_returns_on_whole_real_photos_keeps_its_published_figures(afw_scenes) -> None:
    """The whole pipeline users get: the CNN at the threshold chosen under the not-a-face cut, the landmark
    re-crops, duplicates merged and non-faces dropped, on all of AFW's photos. benchmarks/results/detection.md's
    facepoints+landmarks row (337 of 337 found, 66 false: since session 34 the default runs the CNN, with its
    mirrored look, at the rule's threshold, see docs/detection.md) with a little room: a worse detector, verifier,
    landmark model, cut or threshold turns this red. Without the faces flagged doubtful (the `, sure` row: 333
    found, 18 false) most false detections go and few faces do."""
    import facepoints
    from facepoints.detectors.evaluate import LandmarkPipeline

    model = facepoints.load(threads=1)
    s = summarise(run_detector("facepoints+landmarks", LandmarkPipeline(model), afw_scenes).results, -np.inf)
    assert s.faces == 337 and s.found >= 334 and s.false_positives <= 73, s
    sure = summarise(run_detector("sure", LandmarkPipeline(model, sure_only=True), afw_scenes).results, -np.inf)
    assert sure.found >= 329 and sure.false_positives <= 22 and sure.false_positives < s.false_positives / 2, sure


def test_detect_finds_large_faces_turned_by_45_degrees(real_data: Path) -> None:
    """benchmarks/detection.py's afw-rot+-45 set, facepoints+landmarks (332 of 337 in detection.md). The detector
    before the five-point head found 291 (its first landmark pass saw these ~200 px turned faces unturned, in a
    box 1.5x too big), 308 with a pyramid chosen for large turned faces: either turns this red."""
    import facepoints
    from facepoints.detectors.evaluate import LandmarkPipeline

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import detection

    assert detection.DATA.resolve() == real_data.resolve()
    rolled = detection.afw_rotated(45.0, every=1)
    s = summarise(run_detector("facepoints+landmarks", LandmarkPipeline(facepoints.load(threads=1)), rolled).results,
                  -np.inf)
    assert s.faces == 337 and s.found >= 328, s


def afw_rotated(data: Path, angle: float, every: int):
    import cv2

    from facepoints.datasets import load_dataset
    from facepoints.detectors.evaluate import LabelledPhoto

    out = []
    for i, s in enumerate(load_dataset(str(data / "300w-68/afw"), progress=False)[0][::every]):
        h, w = s.image.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle if i % 2 else -angle, 1.0)
        img = cv2.warpAffine(s.image, m, (w, h))
        pts = s.points[s.mask] @ m[:, :2].T + m[:, 2]
        out.append(LabelledPhoto(str(i), img, tight_box(pts)[None], np.zeros((0, 4))))
    return out


# ---------------------------------------------------------------- command line


def test_detect_command_takes_a_detector_and_refuses_unknown_ones(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from facepoints.cli import app

    runner = CliRunner()
    for name in ("facepoints", "haar"):
        out = tmp_path / name
        r = runner.invoke(app, ["detect", "--sample", "--detector", name, "--out", str(out)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        images = json.loads((out / "results.json").read_text())["images"]
        assert len(images) == 1 and len(images[0]["faces"]) == 1  # the sample's one face
    r = runner.invoke(app, ["detect", "--sample", "--detector", "mtcnn", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "facepoints, haar, dlib" in r.output


def test_evaluate_detector_reports_recall_ap_and_a_pr_plot(tmp_path: Path, real_data: Path) -> None:
    from typer.testing import CliRunner

    from facepoints.cli import app

    src = real_data / "300w-68/afw-scenes/afw_scenes_bbx_gt.txt"
    lines = src.read_text().splitlines()
    head, i = [], 0
    while len([ln for ln in head if ln.startswith("images/")]) < 6:  # the first six photos
        count = int(lines[i + 1])
        head += lines[i:i + 2 + count]
        i += 2 + count
    ann = real_data / "300w-68/afw-scenes" / "afw_scenes_bbx_gt.txt"
    small = tmp_path / "six.txt"
    small.write_text("\n".join(head) + "\n")
    r = CliRunner().invoke(app, ["evaluate-detector", "facepoints", str(small), "--images", str(ann.parent),
                                 "--out", str(tmp_path / "ev")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "ev" / "detector_eval.json").read_text())
    faces = sum(len(w.faces) for w in read_wider(small, ann.parent))
    assert report["photos"] == 6 and report["faces"] == faces
    assert 0 < report["recall"] <= 1 and 0 < report["ap"] <= 1 and report["ms_per_photo_median"] > 0
    assert (tmp_path / "ev" / "detector_pr.png").stat().st_size > 1000


def test_evaluate_detector_lists_unreadable_photos_and_refuses_bad_options(tmp_path: Path, real_data: Path) -> None:
    from typer.testing import CliRunner

    from facepoints.cli import app

    root = real_data / "300w-68/afw-scenes"
    lines = (root / "afw_scenes_bbx_gt.txt").read_text().splitlines()
    first = lines[:2 + int(lines[1])]
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "empty.jpg").write_bytes(b"")
    ann = tmp_path / "ann.txt"
    ann.write_text("\n".join([*first, "images/missing.jpg", "1", "10 10 40 40 0 0 0 0 0 0",
                              "images/empty.jpg", "1", "10 10 40 40 0 0 0 0 0 0"]) + "\n")
    (tmp_path / "images" / Path(first[0]).name).write_bytes((root / first[0]).read_bytes())
    runner = CliRunner()
    r = runner.invoke(app, ["evaluate-detector", "haar", str(ann), "--images", str(tmp_path),
                            "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "ev" / "detector_eval.json").read_text())
    assert report["photos"] == 1 and [s["file"] for s in report["skipped"]] == ["images/missing.jpg",
                                                                              "images/empty.jpg"]
    assert "skipped images/missing.jpg" in r.output
    for args, message in ((["--fp-budget", "-1"], "fp-budget"), (["--out", str(ann)], "is a file"),
                          (["--images", str(tmp_path / "nowhere")], "no such folder")):
        r = runner.invoke(app, ["evaluate-detector", "haar", str(ann), "--images", str(tmp_path), *args])
        assert r.exit_code == 2 and message in r.output, r.output
    r = runner.invoke(app, ["evaluate-detector", "nosuch", str(ann), "--out", str(tmp_path / "never")])
    assert r.exit_code == 2 and "nosuch" in r.output and not (tmp_path / "never").exists(), r.output


def test_matched_detection_is_the_best_overlap_above_the_bar() -> None:
    from facepoints.detectors.base import Detection
    from facepoints.detectors.boxmap import matched_detection

    dets = [Detection(np.array([0.0, 0, 10, 10]), 0.9), Detection(np.array([5.0, 5, 15, 15]), 0.5)]
    assert matched_detection(dets, np.array([5.0, 5, 15, 15]), 0.5) is dets[1]  # overlap, not score, decides
    assert matched_detection(dets, np.array([50.0, 50, 60, 60]), 0.3) is None
    assert matched_detection([], np.array([0.0, 0, 1, 1]), 0.3) is None


def test_cnn_levels_tile_face_sizes_from_the_smallest_to_the_whole_photo() -> None:
    det = CnnDetector(threads=1, band_px=128, pyramid_step=0.5, band_overlap=1.0)
    levels = det.levels(1024, 768)
    scales = [s for s, _, _ in levels]
    assert scales == pytest.approx([1.0, 0.5, 0.25, 0.125])  # stops once the photo is smaller than the band
    assert levels[0][1] == 0.0 and levels[-1][2] == np.inf
    for (s0, _, hi0), (s1, lo1, _) in zip(levels, levels[1:]):
        assert hi0 / s0 == pytest.approx(lo1 / s1)  # each level starts, in photo pixels, where the last ends
    assert CnnDetector(threads=1, pyramid=False).levels(1024, 768) == [(1.0, 0.0, np.inf)]
    wide = CnnDetector(threads=1, band_px=128, pyramid_step=0.5, band_overlap=1.5).levels(1024, 768)
    for (s0, _, hi0), (s1, lo1, _) in zip(wide, wide[1:]):
        assert hi0 / s0 == pytest.approx(1.5 ** 2 * lo1 / s1)  # neighbours share a band 1.5^2 wide
    with pytest.raises(DetectorError, match="band_overlap"):
        CnnDetector(band_overlap=3.0)
    with pytest.raises(DetectorError, match="pyramid_step"):
        CnnDetector(pyramid_step=1.0)


def test_the_cnn_finds_faces_larger_than_it_was_trained_on(three_faces) -> None:
    import cv2

    image, truths = three_faces
    gt = np.stack([tight_box(p) for p in truths])
    k = 520 / (gt[:, 2] - gt[:, 0]).min()  # twice the largest face in its training scenes
    big = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    gt, side = gt * k, max(big.shape[:2])

    def found(det: CnnDetector) -> int:
        boxes = np.array([d.box for d in det.detect(big)]).reshape(-1, 4)
        return int((box_iou(boxes, gt).max(axis=0) >= 0.5).sum()) if len(boxes) else 0

    assert found(CnnDetector(threads=1, max_side=side)) == 3
    assert found(CnnDetector(threads=1, max_side=side, pyramid=False)) < 3


def test_mistakes_grid_draws_each_false_detection_and_each_missed_face(tmp_path: Path) -> None:
    import cv2

    from facepoints.detectors.evaluate import DetectorRun, LabelledPhoto, mistakes_grid

    img = np.full((200, 300, 3), 90, np.uint8)
    faces = np.array([[10.0, 10, 60, 70], [150, 20, 210, 90]])
    photo = LabelledPhoto("a", img, faces, np.zeros((0, 4)))
    boxes = np.array([[12.0, 11, 61, 70], [100, 120, 140, 170], [220, 120, 260, 170]])  # 1 hit, 2 false
    scores = np.array([0.9, 0.8, 0.1])  # the second false one is under the threshold
    run = DetectorRun("x", [match_image(boxes, scores, faces)], [0.01], [boxes])
    assert mistakes_grid(run, [photo], 0.5, tmp_path / "m.png", cols=4) == (1, 1)
    grid = cv2.imread(str(tmp_path / "m.png"))
    assert grid.shape == (2 * 96, 4 * 96, 3)  # a row of false detections, then a row of missed faces
    assert grid[96:, 96:].max() == 0 and grid[:96, :96].max() > 0
