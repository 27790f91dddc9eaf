"""iBUG .pts folders (1-based files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepoints.datasets import DataError, load_pts_folder, read_pts, write_pts
from tests.datasets.builders import random_points, save_jpeg


def test_pts_folder_is_one_based(tmp_path: Path) -> None:
    pts = random_points(seed=4)
    save_jpeg(tmp_path / "img1.jpg")
    write_pts(tmp_path / "img1.pts", pts)
    text = (tmp_path / "img1.pts").read_text()
    assert text.startswith("version: 1\nn_points: 68\n{") and f"{pts[0, 0] + 1:.3f}" in text
    samples, report = load_pts_folder(tmp_path, progress=False)
    assert len(samples) == 1 and report.kept == 1
    np.testing.assert_allclose(samples[0].points, pts, atol=1e-3)


def test_pts_bad_files_reported(tmp_path: Path) -> None:
    save_jpeg(tmp_path / "ok.jpg")
    write_pts(tmp_path / "ok.pts", random_points())
    save_jpeg(tmp_path / "short.jpg")
    write_pts(tmp_path / "short.pts", random_points(k=10))
    (tmp_path / "broken.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    save_jpeg(tmp_path / "broken.jpg")
    write_pts(tmp_path / "orphan.pts", random_points())
    samples, report = load_pts_folder(tmp_path, progress=False)
    assert [Path(s.source).name for s in samples] == ["ok.jpg"]
    assert any("orphan" in f for f, _ in report.unreadable)
    assert any("broken" in f for f, _ in report.bad_records)
    assert any("short" in f for f, _ in report.bad_records)
    broken = next(line for line in report.summary().splitlines() if "malformed:" in line and "broken" in line)
    assert broken.count("broken.pts") == 1 and "header says 68 points" in broken  # the file named once
    with pytest.raises(DataError):
        read_pts(tmp_path / "broken.pts")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .pts"):
        load_pts_folder(empty)


def test_photo_groups_do_not_depend_on_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation holds out photos by group: the same photos from any folder a run starts in."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        save_jpeg(folder / f"img{i}.jpg", seed=i)
        write_pts(folder / f"img{i}.pts", random_points(seed=i))
    groups = []
    for cwd in (tmp_path, folder):
        monkeypatch.chdir(cwd)
        samples, _ = load_pts_folder(folder if cwd == tmp_path else ".", progress=False)
        groups.append([s.group for s in samples])
    assert groups[0] == groups[1] and len(set(groups[0])) == 3
