"""The YouTube-Faces keypoints CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepoints.datasets import DataError, load_dataset, load_youtube_csv
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


def test_a_latin1_byte_loses_only_its_row_and_names_file_and_line(tmp_path: Path) -> None:
    csv_path = write_youtube_csv(tmp_path, {"a_1.jpg": random_points(seed=1), "b_1.jpg": random_points(seed=2)})
    for n in "abc":
        save_jpeg(tmp_path / "training" / f"{n}_1.jpg")
    with open(csv_path, "ab") as f:
        f.write("Jos\xe9_1.jpg".encode("latin-1") + b"," + ",".join(["1"] * 136).encode() + b"\n")
        f.write(b"c_1.jpg," + ",".join(f"{v:.2f}" for v in random_points(seed=3).ravel()).encode() + b"\n")
    samples, report = load_youtube_csv(csv_path, progress=False)
    assert [Path(s.source).name for s in samples] == ["a_1.jpg", "b_1.jpg", "c_1.jpg"]  # the good rows survive
    (where, why), = report.bad_records
    assert where == f"{csv_path}:4" and "0xE9" in why and "UTF-8" in why


def test_csv_files_that_are_not_keypoint_csvs_get_one_clear_message(tmp_path: Path) -> None:
    cases = {
        "empty.csv": (b"", "is empty"),
        "header_only.csv": (("," + ",".join(str(i) for i in range(136)) + "\n").encode(), "header but no rows"),
        "semicolons.csv": (("file;" + ";".join(str(i) for i in range(136)) + "\na.jpg;" + ";".join(["1"] * 136)
                            + "\n").encode(), "separated by ';'"),
        "long_field.csv": (b"file,x0,y0\n" + b"a.jpg,\"" + b"1" * 200_000 + b"\",2\n", "line 2"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=message) as e:
            load_dataset(str(path), progress=False)
        assert str(path) in str(e.value) and "\n" not in str(e.value), name
