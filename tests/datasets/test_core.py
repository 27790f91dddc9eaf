"""Cleaning and its report, splits by group, scheme conversion on load, real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepoints.datasets import DataError, DatasetSpec, load_dataset, load_youtube_csv, split_by_group, write_pts
from tests.datasets.builders import random_points, save_jpeg, write_youtube_csv


def test_cleaning_masks_or_drops_and_reports_everything(tmp_path: Path) -> None:
    good = random_points(seed=1)
    nan = random_points(seed=2)
    nan[3] = np.nan
    far = random_points(seed=3)
    far[5] = [1000.0, 20.0]
    csv_path = write_youtube_csv(tmp_path, {"a_1.jpg": good, "b_1.jpg": nan, "c_1.jpg": far, "d_1.jpg": good,
                                    "e_1.jpg": good, "missing_1.jpg": good})
    for n in "abc":
        save_jpeg(tmp_path / "training" / f"{n}_1.jpg")
    (tmp_path / "training" / "d_1.jpg").write_text("this is not a jpeg")
    full = tmp_path / "full.jpg"
    save_jpeg(full, 200, 200)
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
    save_jpeg(tmp_path / "img1.jpg")
    write_pts(tmp_path / "img1.pts", random_points())
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


def test_one_image_reader_for_datasets_and_photos(tmp_path: Path) -> None:
    """16-bit / 257, transparency on white, EXIF only when asked (dataset points are in stored pixels)."""
    from facepoints.datasets.core import read_image, read_rgb
    from facepoints.errors import ImageReadError, UserError

    Image.fromarray(np.full((4, 6), 1000, np.uint16)).save(tmp_path / "deep.png")
    assert ((read_rgb(tmp_path / "deep.png") == round(1000 / 257)).all()
            and read_rgb(tmp_path / "deep.png").shape == (4, 6, 3))
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 0  # one transparent pixel, the rest opaque red
    rgba[1:, :, 3] = 255
    rgba[0, 1:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    out = read_rgb(tmp_path / "alpha.png")
    assert out[0, 0].tolist() == [255, 255, 255] and out[2, 2].tolist() == [200, 0, 0]
    wide = np.zeros((10, 20, 3), np.uint8)
    wide[:, :5] = 255  # a bright left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(wide).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    upright, stored = read_rgb(tmp_path / "turned.jpg"), read_image(tmp_path / "turned.jpg")
    assert stored.shape == (10, 20, 3) and upright.shape == (20, 10, 3)
    assert upright[:5].mean() > 200 and upright[-5:].mean() < 50  # the left edge is now the top
    assert (read_rgb(Image.fromarray(wide)) == wide).all()
    with pytest.raises(ImageReadError, match="nope.png: no such file") as e:
        read_rgb(tmp_path / "nope.png")
    assert isinstance(e.value, UserError)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="text.png"):
        read_image(tmp_path / "text.png")
