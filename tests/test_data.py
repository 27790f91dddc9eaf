from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepoints import geometry
from facepoints.datasets import (
    DataError,
    DatasetSpec,
    load_dataset,
    load_kaggle_csv,
    load_pts_folder,
    load_youtube_csv,
    read_pts,
    split_by_group,
    write_pts,
)
from facepoints.schemes import SchemeError, convert_points, load_scheme, scheme_from_dict


def _save(path: Path, h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=95)
    return arr


def _points(k: int = 68, w: int = 80, h: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(5, w - 5, k), rng.uniform(5, h - 5, k)], 1)


# ---------------------------------------------------------------- YouTube/Udacity CSV


def _write_yt(tmp: Path, rows: dict[str, np.ndarray | list]) -> Path:
    (tmp / "training").mkdir()
    csv_path = tmp / "training_frames_keypoints.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([""] + [str(i) for i in range(136)])
        for name, pts in rows.items():
            flat = ["" if (isinstance(v, float) and np.isnan(v)) else v for v in np.asarray(pts, dtype=object).ravel()]
            w.writerow([name, *flat])
    return csv_path


def test_youtube_csv_reads_points_and_groups(tmp_path: Path) -> None:
    p1, p2 = _points(seed=1), _points(seed=2)
    csv_path = _write_yt(tmp_path, {"Ann_Lee_01.jpg": p1, "Ann_Lee_02.jpg": p2})
    _save(tmp_path / "training" / "Ann_Lee_01.jpg")
    _save(tmp_path / "training" / "Ann_Lee_02.jpg")
    samples, report = load_youtube_csv(csv_path, progress=False)
    assert len(samples) == 2 and report.kept == 2 and not report.dropped
    np.testing.assert_allclose(samples[0].points, p1, atol=1e-4)  # 0-based: no shift
    assert samples[0].image.shape == (60, 80, 3) and samples[0].mask.all()
    assert samples[0].group == samples[1].group == "Ann_Lee"


def test_cleaning_masks_or_drops_and_reports_everything(tmp_path: Path) -> None:
    good = _points(seed=1)
    nan = _points(seed=2)
    nan[3] = np.nan
    far = _points(seed=3)
    far[5] = [1000.0, 20.0]
    csv_path = _write_yt(tmp_path, {"a_1.jpg": good, "b_1.jpg": nan, "c_1.jpg": far, "d_1.jpg": good,
                                    "e_1.jpg": good, "missing_1.jpg": good})
    for n in "abc":
        _save(tmp_path / "training" / f"{n}_1.jpg")
    (tmp_path / "training" / "d_1.jpg").write_text("this is not a jpeg")
    full = tmp_path / "full.jpg"
    _save(full, 200, 200)
    data = full.read_bytes()
    (tmp_path / "training" / "e_1.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG

    samples, report = load_youtube_csv(csv_path, policy="mask", progress=False)
    by_file = {Path(s.source).name: s for s in samples}
    assert set(by_file) == {"a_1.jpg", "b_1.jpg", "c_1.jpg"}
    assert not by_file["b_1.jpg"].mask[3] and np.isnan(by_file["b_1.jpg"].points[3]).all()
    assert not by_file["c_1.jpg"].mask[5] and by_file["c_1.jpg"].mask.sum() == 67
    assert report.records == 6 and report.kept == 3
    assert [Path(f).name for f, _ in report.missing_points] == ["b_1.jpg"]
    assert [Path(f).name for f, _ in report.out_of_range] == ["c_1.jpg"]
    unreadable = {Path(f).name for f, _ in report.unreadable}
    assert unreadable == {"d_1.jpg", "e_1.jpg", "missing_1.jpg"}
    assert "unreadable images: 3" in report.summary()

    samples, report = load_youtube_csv(csv_path, policy="drop", progress=False)
    assert [Path(s.source).name for s in samples] == ["a_1.jpg"]
    assert {Path(f).name for f, _ in report.dropped} == {"b_1.jpg", "c_1.jpg", "d_1.jpg", "e_1.jpg", "missing_1.jpg"}


def test_youtube_csv_malformed_rows_are_reported(tmp_path: Path) -> None:
    csv_path = _write_yt(tmp_path, {"a_1.jpg": _points()})
    _save(tmp_path / "training" / "a_1.jpg")
    with open(csv_path, "a") as f:
        f.write("b_1.jpg," + ",".join(["x"] * 136) + "\n")
        f.write("c_1.jpg," + ",".join(["1"] * 10) + "\n")  # too few points
    samples, report = load_youtube_csv(csv_path, progress=False)
    assert len(samples) == 1
    assert len(report.bad_records) == 2 and len(report.dropped) == 2


# ---------------------------------------------------------------- iBUG .pts


def test_pts_folder_is_one_based(tmp_path: Path) -> None:
    pts = _points(seed=4)
    _save(tmp_path / "img1.jpg")
    write_pts(tmp_path / "img1.pts", pts)
    text = (tmp_path / "img1.pts").read_text()
    assert text.startswith("version: 1\nn_points: 68\n{") and f"{pts[0, 0] + 1:.3f}" in text
    samples, report = load_pts_folder(tmp_path, progress=False)
    assert len(samples) == 1 and report.kept == 1
    np.testing.assert_allclose(samples[0].points, pts, atol=1e-3)


def test_pts_bad_files_reported(tmp_path: Path) -> None:
    _save(tmp_path / "ok.jpg")
    write_pts(tmp_path / "ok.pts", _points())
    _save(tmp_path / "short.jpg")
    write_pts(tmp_path / "short.pts", _points(k=10))
    (tmp_path / "broken.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    _save(tmp_path / "broken.jpg")
    write_pts(tmp_path / "orphan.pts", _points())
    samples, report = load_pts_folder(tmp_path, progress=False)
    assert [Path(s.source).name for s in samples] == ["ok.jpg"]
    assert any("orphan" in f for f, _ in report.unreadable)
    assert any("broken" in f for f, _ in report.bad_records)
    assert any("short" in f for f, _ in report.bad_records)
    with pytest.raises(DataError):
        read_pts(tmp_path / "broken.pts")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .pts"):
        load_pts_folder(empty)


# ---------------------------------------------------------------- Kaggle CSV


def test_kaggle_csv_missing_values_are_masked(tmp_path: Path) -> None:
    scheme = load_scheme("kaggle15")
    cols = [f"{n}_{a}" for n in scheme.points for a in ("x", "y")]
    rng = np.random.default_rng(0)
    pix = rng.integers(0, 255, 96 * 96)
    vals = rng.uniform(10, 86, 30)
    path = tmp_path / "training.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols + ["Image"])
        w.writerow([f"{v:.4f}" for v in vals] + [" ".join(map(str, pix))])
        partial = [f"{v:.4f}" for v in vals]
        partial[4:8] = [""] * 4  # two points missing, as in most Kaggle rows
        w.writerow(partial + [" ".join(map(str, pix))])
        w.writerow([f"{v:.4f}" for v in vals] + ["1 2 3"])  # not a square image
    samples, report = load_kaggle_csv(path, progress=False)
    assert len(samples) == 2 and samples[0].scheme == "kaggle15"
    np.testing.assert_allclose(samples[0].points.ravel(), vals, atol=1e-3)
    assert samples[0].image.shape == (96, 96, 3)
    assert samples[0].image[0, 1, 0] == pix[1]
    assert samples[1].mask.tolist() == [True, True, False, False] + [True] * 11
    assert len(report.missing_points) == 1 and len(report.unreadable) == 1
    assert load_dataset(str(path), progress=False)[0][0].scheme == "kaggle15"  # format detected


# ---------------------------------------------------------------- schemes


def test_flip_pairs_are_symmetric_and_eye_corners_swap() -> None:
    s = load_scheme("ibug68")
    perm = s.flip_permutation()
    assert (perm[perm] == np.arange(68)).all()
    assert perm[36] == 45 and perm[0] == 16 and perm[30] == 30 and perm[48] == 54
    assert s.normalise == (36, 45)
    assert sum(len(v) for v in s.regions.values()) == 68


def test_convert_68_to_15_and_5() -> None:
    pts = np.arange(136, dtype=float).reshape(68, 2)
    mask = np.ones(68, bool)
    mask[37] = False
    out, valid = convert_points(pts, mask, "ibug68", "kaggle15")
    assert out.shape == (15, 2)
    np.testing.assert_allclose(out[0], pts[42:48].mean(0))  # subject's left eye = image right
    np.testing.assert_allclose(out[10], pts[30])
    assert not valid[1] and valid[0]  # the right eye centre needs point 37
    five, v5 = convert_points(pts, None, "ibug68", "five")
    np.testing.assert_allclose(five[2], pts[30])
    assert v5.all()
    with pytest.raises(SchemeError):
        convert_points(np.zeros((15, 2)), None, "kaggle15", "ibug68")


def test_custom_scheme_validation_and_missing_flip(tmp_path: Path) -> None:
    s = scheme_from_dict({"name": "tri", "points": ["a", "b", "c"], "normalise": [0, 1]})
    with pytest.raises(SchemeError, match="no flip table"):
        s.flip_permutation()
    with pytest.raises(SchemeError):
        scheme_from_dict({"name": "bad", "points": ["a"], "normalise": [0, 3]})
    path = tmp_path / "my.yaml"
    path.write_text("name: my\npoints: [l, r, n]\nflip_pairs: [[0, 1]]\nnormalise: [0, 1]\n")
    assert load_scheme(str(path)).flip_permutation().tolist() == [1, 0, 2]


# ---------------------------------------------------------------- geometry


def test_coordinate_round_trip_image_crop_normalised_image() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.uniform(0, 500, (68, 2))
        box = geometry.tight_box(pts) + rng.normal(0, 5, 4)
        size = int(rng.choice([64, 96, 112]))
        m = geometry.crop_matrix(box, size, float(rng.uniform(1.0, 1.6)))
        norm = geometry.to_normalised(geometry.apply_affine(pts, m), size)
        back = geometry.apply_affine(geometry.from_normalised(norm, size), geometry.invert_affine(m))
        assert np.abs(back - pts).max() < 0.01


def test_crop_follows_pixels() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    img[120, 170] = 255  # a single bright pixel
    box = np.array([100.0, 80.0, 220.0, 190.0])
    m = geometry.crop_matrix(box, 240, 1.0)  # 2x upscale, exact pixel grid
    crop = geometry.warp_crop(img, m, 240)
    u = geometry.apply_affine(np.array([[170.0, 120.0]]), m)[0]
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert abs(x - u[0]) <= 1.0 and abs(y - u[1]) <= 1.0
    # normalised 0 and 1 are the crop's outer edges
    assert np.allclose(geometry.from_normalised(np.array([0.0, 1.0]), 240), [-0.5, 239.5])


def test_split_holds_out_whole_groups(tmp_path: Path) -> None:
    from facepoints.datasets import Sample

    samples = [Sample(np.zeros((4, 4, 3), np.uint8), np.zeros((68, 2), np.float32), np.ones(68, bool), f"{g}_{i}.jpg",
                      group=f"person{g}") for g in range(40) for i in range(5)]
    train, val = split_by_group(samples, 0.2, seed=1)
    assert len(train) + len(val) == 200 and val
    assert not {s.group for s in train} & {s.group for s in val}
    again = split_by_group(samples, 0.2, seed=1)[1]
    assert [s.source for s in again] == [s.source for s in val]


def test_dataset_spec_converts_scheme(tmp_path: Path) -> None:
    _save(tmp_path / "img1.jpg")
    write_pts(tmp_path / "img1.pts", _points())
    samples, _ = load_dataset(DatasetSpec(str(tmp_path), scheme="kaggle15"), progress=False)
    assert samples[0].points.shape == (15, 2) and samples[0].scheme == "kaggle15"
    with pytest.raises(DataError):
        load_dataset(str(tmp_path / "nope"))


def test_real_datasets_load_clean(real_data: Path) -> None:
    samples, report = load_dataset(str(real_data / "300w-68" / "afw"), progress=False)
    assert report.kept == 337 == len(samples)
    assert all(s.points.shape == (68, 2) for s in samples)
    s = samples[0]
    assert (s.points[:, 0] >= -1).all() and (s.points[:, 0] <= s.size[0]).all()
    yt, rep = load_dataset(str(real_data / "youtube-faces-68" / "test_frames_keypoints.csv"), progress=False)
    assert rep.kept == 770 and rep.records == 770
