"""COFW colour .mat files, v5 (scipy) and v7.3 (HDF5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from facepoints.datasets import (
    DataError,
    Sample,
    detect_format,
    load_cofw_mat,
    load_dataset,
)
from tests.datasets.builders import cofw_arrays, mat_cell, write_mat73


def _check_cofw(samples: list[Sample], images: list[np.ndarray], phis: np.ndarray, split: str) -> None:
    assert len(samples) == len(images)
    for s, img, row in zip(samples, images, phis):
        assert s.scheme == "cofw29" and s.split == split
        np.testing.assert_allclose(s.points[:, 0], row[:29] - 1.0, atol=1e-4)  # shifted to 0-based
        np.testing.assert_allclose(s.points[:, 1], row[29:58] - 1.0, atol=1e-4)
        assert s.visible.tolist() == (row[58:] == 0).tolist()
        assert s.mask.all()
        expected = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)  # grey -> RGB
        np.testing.assert_array_equal(s.image, expected)
    np.testing.assert_allclose(samples[0].box, [3, 4, 53, 44])  # x y w h (1-based) -> x0 y0 x1 y1
    assert not samples[0].visible[3] and not samples[0].visible[22] and samples[1].visible.all()


def test_cofw_test_mat_v5(tmp_path: Path) -> None:
    images, phis, boxes = cofw_arrays()
    path = tmp_path / "COFW_test_color.mat"
    scipy.io.savemat(path, {"IsT": mat_cell(images), "phisT": phis, "bboxesT": boxes})
    assert detect_format(path) == "cofw-mat"
    samples, report = load_dataset(str(path), progress=False)
    _check_cofw(samples, images, phis, "test")
    assert report.occluded_points == [(samples[0].source, 2)]


def test_cofw_train_mat_v73(tmp_path: Path) -> None:
    images, phis, boxes = cofw_arrays()
    path = tmp_path / "COFW_train_color.mat"
    write_mat73(path, {"IsTr": images, "phisTr": phis, "bboxesTr": boxes})
    assert path.read_bytes()[:10] == b"MATLAB 7.3"
    assert detect_format(path) == "cofw-mat"
    samples, _ = load_dataset(f"{path}@train", progress=False)
    _check_cofw(samples, images, phis, "train")


def test_cofw_malformed(tmp_path: Path) -> None:
    images, phis, boxes = cofw_arrays()
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"IsT": mat_cell(images), "phisT": phis[:, :58], "bboxesT": boxes})
    with pytest.raises(DataError, match="87"):
        load_cofw_mat(path, progress=False)
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"x": np.zeros(3)})
    with pytest.raises(DataError, match="neither COFW"):
        detect_format(other)
