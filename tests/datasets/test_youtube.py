"""The YouTube-Faces keypoints CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepoints.datasets import (
    load_youtube_csv,
)
from tests.datasets.builders import random_points, save_jpeg, write_youtube_csv


def test_youtube_csv_reads_points_and_groups(tmp_path: Path) -> None:
    p1, p2 = random_points(seed=1), random_points(seed=2)
    csv_path = write_youtube_csv(tmp_path, {"Ann_Lee_01.jpg": p1, "Ann_Lee_02.jpg": p2})
    save_jpeg(tmp_path / "training" / "Ann_Lee_01.jpg")
    save_jpeg(tmp_path / "training" / "Ann_Lee_02.jpg")
    samples, report = load_youtube_csv(csv_path, progress=False)
    assert len(samples) == 2 and report.kept == 2 and not report.dropped
    np.testing.assert_allclose(samples[0].points, p1, atol=1e-4)  # 0-based: no shift
    assert samples[0].image.shape == (60, 80, 3) and samples[0].mask.all()
    assert samples[0].group == samples[1].group == "Ann_Lee"


def test_youtube_csv_malformed_rows_are_reported(tmp_path: Path) -> None:
    csv_path = write_youtube_csv(tmp_path, {"a_1.jpg": random_points()})
    save_jpeg(tmp_path / "training" / "a_1.jpg")
    with open(csv_path, "a") as f:
        f.write("b_1.jpg," + ",".join(["x"] * 136) + "\n")
        f.write("c_1.jpg," + ",".join(["1"] * 10) + "\n")  # too few points
    samples, report = load_youtube_csv(csv_path, progress=False)
    assert len(samples) == 1
    assert len(report.bad_records) == 2 and len(report.dropped) == 2
