"""The Kaggle Facial Keypoints CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facepoints.datasets import (
    load_dataset,
    load_kaggle_csv,
)
from facepoints.schemes import load_scheme


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
