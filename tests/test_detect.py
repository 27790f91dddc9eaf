"""The Haar face detector and the box map, on real annotated faces (no torch needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepoints.datasets import read_image
from facepoints.detectors import (
    FRONTAL_CASCADE,
    PROFILE_CASCADE,
    BoxMap,
    BoxMaps,
    Detection,
    DetectorError,
    FaceDetector,
    box_iou,
    fit_box_map,
    merge_detections,
)
from facepoints.geometry import tight_box
from facepoints.refine import rolls

# Frontal faces of three different people from the YouTube-Faces test split.
COMPOSITE_FACES = ("Linda_Franklin_01.jpg", "Ethan_Hawke_30.jpg", "Wesley_Clark_00.jpg")


def youtube_test_faces(data: Path, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, 68 points) for the named test frames, read straight from the dataset's CSV."""
    root = data / "youtube-faces-68"
    with open(root / "test_frames_keypoints.csv", newline="", encoding="utf-8") as f:
        rows = {r[0]: r for r in csv.reader(f)}
    return [(read_image(root / "test" / n), np.array(rows[n][1:], dtype=np.float64).reshape(-1, 2)) for n in names]


def composite(faces: list[tuple[np.ndarray, np.ndarray]], height: int = 200, gap: int = 40) -> tuple[np.ndarray, list]:
    """Faces resized to one height and pasted side by side on grey; points moved with them."""
    canvas_w = gap + sum(round(img.shape[1] * height / img.shape[0]) + gap for img, _ in faces)
    canvas = np.full((height + 2 * gap, canvas_w, 3), 128, np.uint8)
    points, x = [], gap
    for img, pts in faces:
        s = height / img.shape[0]
        w = round(img.shape[1] * s)
        canvas[gap:gap + height, x:x + w] = cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)
        # pixel centres at integers: a resize by s maps u -> (u + 0.5) * s - 0.5
        points.append(np.stack([(pts[:, 0] + 0.5) * w / img.shape[1] - 0.5 + x,
                                (pts[:, 1] + 0.5) * s - 0.5 + gap], axis=1))
        x += w + gap
    return canvas, points


@pytest.fixture(scope="module")
def scene(real_data: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    return composite(youtube_test_faces(real_data, COMPOSITE_FACES))


def assert_each_face_found(found: np.ndarray, truths: list[np.ndarray], min_iou: float = 0.5) -> None:
    assert len(found) == len(truths)
    iou = box_iou(found, np.stack([tight_box(p) for p in truths]))
    assert (iou.max(axis=0) > min_iou).all(), iou  # every true face has its box
    assert sorted(iou.argmax(axis=0).tolist()) == list(range(len(truths)))  # ... and a different one


def test_composite_of_real_faces_finds_each_face_with_a_tight_mapped_box(scene) -> None:
    image, truths = scene
    dets = FaceDetector().detect(image)
    assert all(d.cascade == FRONTAL_CASCADE and not d.mirrored and d.score >= 0 for d in dets)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    assert_each_face_found(BoxMaps.load().apply(dets), truths)


def test_the_box_map_improves_on_raw_haar_boxes(scene) -> None:
    image, truths = scene
    dets = FaceDetector().detect(image)
    tights = np.stack([tight_box(p) for p in truths])
    raw = box_iou(np.stack([d.box for d in dets]), tights).max(axis=0)
    mapped = box_iou(BoxMaps.load().apply(dets), tights).max(axis=0)
    assert mapped.mean() > raw.mean() + 0.1


def test_huge_images_are_shrunk_and_boxes_mapped_back(scene) -> None:
    image, truths = scene
    big = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    big_truths = [(p + 0.5) * 4 - 0.5 for p in truths]
    dets = FaceDetector(max_side=800).detect(big)
    assert_each_face_found(BoxMaps.load().apply(dets), big_truths)


def test_greyscale_input_finds_the_same_faces(scene) -> None:
    image, _ = scene
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    a, b = FaceDetector().detect(image), FaceDetector().detect(grey)
    assert np.allclose([d.box for d in a], [d.box for d in b])


def test_profile_cascade_adds_no_duplicates_of_frontal_faces(scene) -> None:
    image, truths = scene
    dets = FaceDetector(profile=True).detect(image)
    assert_each_face_found(BoxMaps.load().apply(dets), truths)


@pytest.mark.parametrize("kind", ["blank", "noise", "gradient"])
def test_images_without_faces_give_no_detections(kind: str) -> None:
    rng = np.random.default_rng(0)
    image = {
        "blank": np.full((240, 320, 3), 128, np.uint8),
        "noise": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
        "gradient": np.repeat(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], 240, 0).repeat(3, 2),
    }[kind]
    assert FaceDetector().detect(image) == []


def test_empty_and_non_uint8_images() -> None:
    assert FaceDetector().detect(np.zeros((0, 10, 3), np.uint8)) == []
    with pytest.raises(DetectorError, match="uint8"):
        FaceDetector().detect(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(DetectorError, match="shape"):
        FaceDetector().detect(np.zeros((50, 50, 2), np.uint8))


def test_missing_cascade_says_how_to_fix_it(monkeypatch) -> None:
    image = np.zeros((60, 60, 3), np.uint8)
    with pytest.raises(DetectorError, match=r"opencv-python-headless<5"):
        FaceDetector(cascade="haarcascade_no_such_face.xml").detect(image)
    monkeypatch.delattr(cv2, "data")  # what an OpenCV 5 wheel looks like
    with pytest.raises(DetectorError, match=r"opencv-python-headless<5"):
        FaceDetector().detect(image)


def test_fit_box_map_recovers_a_known_map() -> None:
    rng = np.random.default_rng(1)
    truth = BoxMap(a_x=0.02, a_y=0.17, s_w=0.88, s_h=0.86)
    xy = rng.uniform(0, 500, (200, 2))
    side = rng.uniform(30, 300, (200, 1))
    dets = np.concatenate([xy, xy + side], axis=1)
    tights = truth.apply(dets)
    tights[:5] += 80  # a few mismatched faces: trimmed away
    fitted = fit_box_map(dets, tights)
    assert np.allclose([fitted.a_x, fitted.a_y, fitted.s_w, fitted.s_h], [0.02, 0.17, 0.88, 0.86], atol=1e-9)
    # mirrored detections flip the x offset, so one map serves faces turned either way
    mirrored = [Detection(b, 1.0, PROFILE_CASCADE, mirrored=True) for b in dets[5:]]
    flipped = BoxMap(-0.02, 0.17, 0.88, 0.86).apply(dets[5:])
    assert np.isclose(fit_box_map(mirrored, flipped).a_x, 0.02)
    with pytest.raises(ValueError):
        fit_box_map(np.zeros((0, 4)), np.zeros((0, 4)))


def test_box_map_apply_shapes_and_arithmetic() -> None:
    m = BoxMap(a_x=0.1, a_y=0.2, s_w=0.5, s_h=2.0)
    box = np.array([0.0, 0.0, 100.0, 50.0])
    assert np.allclose(m.apply(box), [35.0, -15.0, 85.0, 85.0])
    assert np.allclose(m.apply(box, mirrored=True), [15.0, -15.0, 65.0, 85.0])
    assert m.apply(np.stack([box, box])).shape == (2, 4)


def test_box_maps_roundtrip_and_shipped_asset(tmp_path: Path) -> None:
    shipped = BoxMaps.load()
    assert {FRONTAL_CASCADE, PROFILE_CASCADE, "haarcascade_frontalface_default.xml"} <= set(shipped.maps)
    frontal = shipped.maps[FRONTAL_CASCADE]
    assert 0.7 < frontal.s_w < 1.1 and 0.7 < frontal.s_h < 1.1 and 0.05 < frontal.a_y < 0.3  # chin below the Haar box
    shipped.save(tmp_path / "m.json")
    assert BoxMaps.load(tmp_path / "m.json") == shipped
    with pytest.raises(KeyError, match="no box map fitted"):
        shipped.apply([Detection(np.array([0, 0, 10, 10.0]), 1.0, "haarcascade_eye.xml")])


def test_merge_prefers_frontal_boxes_and_drops_overlapping_profiles() -> None:
    f = Detection(np.array([0, 0, 100, 100.0]), 0.5)
    p_dup = Detection(np.array([10, 5, 105, 100.0]), 9.0, PROFILE_CASCADE)
    p_dup_mirror = Detection(np.array([5, 5, 100, 100.0]), 8.0, PROFILE_CASCADE, mirrored=True)
    p_new = Detection(np.array([300, 0, 380, 80.0]), 1.0, PROFILE_CASCADE)
    kept = merge_detections([f], [p_dup, p_new, p_dup_mirror])
    assert kept == [f, p_new]


def test_detector_parameters_are_dataclass_fields() -> None:
    d = FaceDetector(min_size=40, scale_factor=1.2, min_neighbors=5)
    assert (d.min_size, d.scale_factor, d.min_neighbors) == (40, 1.2, 5)
    assert FaceDetector() == FaceDetector()  # the cascade cache takes no part in equality


def test_detect_re_crops_rolled_faces_upright(real_data: Path) -> None:
    """A face turned 45 degrees gets the points of the upright face: the re-crops turn with its eyes."""
    import cv2
    import pandas as pd

    import facepoints
    from facepoints.detectors.base import Detection

    names = pd.read_csv(real_data / "youtube-faces-68/test_frames_keypoints.csv").iloc[::60, 0]
    faces = youtube_test_faces(real_data, tuple(names))
    models = {u: facepoints.load(threads=1, upright=u, min_face_score=0.0) for u in (True, False)}
    err = {True: [], False: []}
    for i, (img, pts) in enumerate(faces):
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 45.0 if i % 2 else -45.0, 1.0)
        m[:, 2] += [w / 2, h / 2]
        turned = cv2.warpAffine(img, m, (2 * w, 2 * h), borderMode=cv2.BORDER_REPLICATE)
        truth = pts @ m[:, :2].T + m[:, 2]
        det = [Detection(tight_box(truth), 1.0, "facepoints-cnn")]
        for u, model in models.items():
            face = model.detect_many([turned], [det])[0][0]
            err[u].append(np.linalg.norm(face.points - truth, axis=1).mean() / np.linalg.norm(truth[45] - truth[36]))
    assert np.median(err[True]) < 0.06, err  # as good as on upright faces
    assert np.mean(err[True]) < 0.8 * np.mean(err[False]), err


@pytest.mark.parametrize("name", ["default", "kaggle15"])
def test_roll_is_the_face_turn_whichever_way_a_scheme_lists_its_eye_pair(name: str) -> None:
    import facepoints

    model = facepoints.load(name, threads=1)
    a, b = model.scheme.normalise
    pts = np.zeros((1, model.scheme.num_points, 2))
    left, right = (a, b) if name == "default" else (b, a)  # kaggle15 lists the subject's left eye (image right) first
    turn = np.radians(30.0)
    pts[0, left] = [0.0, 0.0]
    pts[0, right] = [40 * np.cos(turn), 40 * np.sin(turn)]  # the image-right eye, 30 degrees down
    assert np.degrees(rolls(pts, model._roll_pair))[0] == pytest.approx(30.0)
