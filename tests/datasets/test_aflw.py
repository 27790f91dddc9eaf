"""AFLW: aflw.sqlite and AFLW-19's AFLWinfo_release.mat."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from facepoints.datasets import (
    DataError,
    DatasetSpec,
    detect_format,
    load_aflw19_mat,
    load_aflw_sqlite,
    load_dataset,
)
from tests.datasets.builders import aflw19_mat, aflw_db, rounded_points


def test_aflw_sqlite(tmp_path: Path) -> None:
    db = aflw_db(tmp_path)
    assert detect_format(db) == "aflw-sqlite"
    samples, report = load_dataset(str(db), progress=False)
    assert report.records == 4 and report.kept == 3
    assert any("face40001" in f for f, _ in report.unreadable)  # a face without its photo is reported
    by_face = {s.source.rsplit("#face", 1)[1]: s for s in samples}
    a, b, c = by_face["39341"], by_face["39342"], by_face["40000"]
    np.testing.assert_allclose(b.points, rounded_points(21, 2), atol=1e-4)
    assert a.scheme == "aflw21" and a.points.shape == (21, 2)
    # feature ids 13 (left ear) and 17 (right ear) absent: masked and not visible, the rest exact
    assert a.mask.tolist() == [i not in (12, 16) for i in range(21)]
    assert a.visible.tolist() == a.mask.tolist()
    np.testing.assert_allclose(a.points[a.mask], rounded_points(21, 1)[a.mask], atol=1e-4)
    np.testing.assert_array_equal(a.box, [10, 12, 40, 47])
    assert a.attributes == {"occluded": True, "glasses": False} and c.attributes["glasses"]
    assert b.box is None and b.attributes == {}
    assert a.group == b.group == "0/image00002.jpg" and a.image is b.image  # one photo, decoded once
    assert sorted(n for _, n in report.missing_points) == [2, 3]
    # AFLW-19 is AFLW-21 without the ears: conversion keeps visibility
    conv, _ = load_dataset(DatasetSpec(str(db), scheme="aflw19"), progress=False)
    ca = next(s for s in conv if s.source.endswith("#face40000"))
    assert ca.scheme == "aflw19" and ca.points.shape == (19, 2) and not ca.visible[:3].any() and ca.visible[3:].all()
    np.testing.assert_allclose(ca.points[18], rounded_points(21, 3)[20], atol=1e-4)  # chin
    with pytest.raises(DataError, match="no splits"):
        load_dataset(f"{db}@test", progress=False)


def test_aflw_sqlite_rejects_other_databases(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(DataError, match="not an AFLW database"):
        load_aflw_sqlite(db, progress=False)


def test_aflw19_mat_points_visibility_and_splits(tmp_path: Path) -> None:
    path, data, vis, _ = aflw19_mat(tmp_path)
    assert detect_format(path) == "aflw19-mat"
    samples, report = load_aflw19_mat(path, progress=False, train_faces=3)
    assert report.kept == 5 and [s.scheme for s in samples] == ["aflw19"] * 5
    np.testing.assert_allclose(samples[2].points[:, 0], data[2, :19], atol=1e-4)
    np.testing.assert_allclose(samples[2].points[:, 1], data[2, 19:], atol=1e-4)
    assert samples[1].mask.all()  # occluded points keep their coordinates...
    assert samples[1].visible.tolist() == (vis[1] > 0).tolist()  # ...and are marked not visible
    assert report.occluded_points and report.occluded_points[0][1] == 2
    np.testing.assert_allclose(samples[0].box, [5, 4, 70, 55])  # l r t b -> x0 y0 x1 y1
    # ra = [3, 1, 5, 2, 4]: faces 3, 1, 5 (1-based) are the first three, i.e. train
    assert [s.split for s in samples] == ["train", "test", "train", "test", "train"]
    assert [s.attributes["frontal"] for s in samples] == [True, False, True, False, True]
    test, _ = load_aflw19_mat(path, progress=False, split="test", train_faces=3)
    assert [s.source.rsplit("#", 1)[1] for s in test] == ["2", "4"]
    # through load_dataset: the real protocol's 20,000 training faces hold all five
    assert len(load_dataset(f"{path}@train", progress=False)[0]) == 5
    with pytest.raises(DataError, match="no 'test' split"):
        load_dataset(f"{path}@test", progress=False)
