"""Every dataset format read from a small file written in that exact format, visibility and
subsets through evaluation, and a custom 5-point scheme trained end to end from a YAML file."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from typer.testing import CliRunner

from facepoints.datasets import (
    DataError,
    DatasetSpec,
    Sample,
    detect_format,
    load_aflw19_mat,
    load_aflw_sqlite,
    load_cofw_mat,
    load_dataset,
    load_points_csv,
    load_wflw_txt,
)
from facepoints.evaluate import attribute_subsets, compute_metrics, markdown_table
from facepoints.schemes import SchemeError, load_scheme
from tests.conftest import synthetic_face

ROOT = Path(__file__).resolve().parents[1]


def _image(path: Path, w: int = 80, h: int = 60, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def _pts(k: int, seed: int, w: int = 80, h: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(5, w - 5, k), rng.uniform(5, h - 5, k)], 1).round(2)


# ---------------------------------------------------------------- schemes


@pytest.mark.parametrize("name,k,pair,by", [("aflw21", 21, (6, 11), "box"), ("aflw19", 19, (6, 11), "box"),
                                            ("wflw98", 98, (60, 72), "points"), ("cofw29", 29, (8, 9), "points")])
def test_new_builtin_schemes(name: str, k: int, pair: tuple[int, int], by: str) -> None:
    s = load_scheme(name)
    perm = s.flip_permutation()
    assert s.num_points == k and s.normalise == pair and s.normalise_by == by
    assert (perm[perm] == np.arange(k)).all()
    assert perm[pair[0]] == pair[1]  # the normalising eye corners are each other's mirror
    assert sorted(i for v in s.regions.values() for i in v) == list(range(k))
    assert load_scheme(name).to_dict().get("normalise_by", "points") == by


# ---------------------------------------------------------------- AFLW SQLite


def _aflw_db(root: Path) -> Path:
    """The real AFLW schema (tables, columns), three faces on two photos, invisible points absent."""
    db = root / "aflw.sqlite"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE Faces (face_id INTEGER PRIMARY KEY, file_id TEXT, db_id TEXT);
        CREATE TABLE FaceImages (image_id INTEGER PRIMARY KEY, db_id TEXT, file_id TEXT, filepath TEXT,
                                 bw INTEGER, width INTEGER, height INTEGER);
        CREATE TABLE FaceRect (face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER, annot_type_id INTEGER);
        CREATE TABLE FeatureCoords (face_id INTEGER, feature_id INTEGER, x REAL, y REAL, annot_type_id INTEGER);
        CREATE TABLE FeatureCoordTypes (feature_id INTEGER PRIMARY KEY, descr TEXT, code TEXT, x REAL, y REAL, z REAL);
        CREATE TABLE FacePose (face_id INTEGER, roll REAL, pitch REAL, yaw REAL, annot_type_id INTEGER);
        CREATE TABLE FaceMetaData (face_id INTEGER, sex TEXT, occluded INTEGER, glasses INTEGER, bw INTEGER,
                                   annot_type_id INTEGER);
    """)
    con.executemany("INSERT INTO FaceImages VALUES (?, 'flickr', ?, ?, 0, 80, 60)",
                    [(1, "image00002.jpg", "0/image00002.jpg"), (2, "image00013.jpg", "2/image00013.jpg")])
    con.executemany("INSERT INTO Faces VALUES (?, ?, 'flickr')",
                    [(39341, "image00002.jpg"), (39342, "image00002.jpg"), (40000, "image00013.jpg"),
                     (40001, "image_missing.jpg")])
    for face, seed, absent in ((39341, 1, {13, 17}), (39342, 2, set()), (40000, 3, {1, 2, 3})):
        pts = _pts(21, seed)
        con.executemany("INSERT INTO FeatureCoords VALUES (?, ?, ?, ?, 1)",
                        [(face, fid, float(x), float(y)) for fid, (x, y) in enumerate(pts, 1) if fid not in absent])
    con.executemany("INSERT INTO FaceRect VALUES (?, ?, ?, ?, ?, 1)", [(39341, 10, 12, 30, 35), (40000, 5, 6, 50, 40)])
    con.executemany("INSERT INTO FaceMetaData VALUES (?, 'f', ?, ?, 0, 1)", [(39341, 1, 0), (40000, 0, 1)])
    con.execute("INSERT INTO FacePose VALUES (39341, 0.1, 0.0, -0.5, 1)")
    con.commit()
    con.close()
    _image(root / "flickr" / "0" / "image00002.jpg", seed=1)
    _image(root / "flickr" / "2" / "image00013.jpg", seed=2)
    return db


def test_aflw_sqlite(tmp_path: Path) -> None:
    db = _aflw_db(tmp_path)
    assert detect_format(db) == "aflw-sqlite"
    samples, report = load_dataset(str(db), progress=False)
    assert report.records == 4 and report.kept == 3
    assert any("face40001" in f for f, _ in report.unreadable)  # a face without its photo is reported
    by_face = {s.source.rsplit("#face", 1)[1]: s for s in samples}
    a, b, c = by_face["39341"], by_face["39342"], by_face["40000"]
    np.testing.assert_allclose(b.points, _pts(21, 2), atol=1e-4)
    assert a.scheme == "aflw21" and a.points.shape == (21, 2)
    # feature ids 13 (left ear) and 17 (right ear) absent: masked and not visible, the rest exact
    assert a.mask.tolist() == [i not in (12, 16) for i in range(21)]
    assert a.visible.tolist() == a.mask.tolist()
    np.testing.assert_allclose(a.points[a.mask], _pts(21, 1)[a.mask], atol=1e-4)
    np.testing.assert_array_equal(a.box, [10, 12, 40, 47])
    assert a.attributes == {"occluded": True, "glasses": False} and c.attributes["glasses"]
    assert b.box is None and b.attributes == {}
    assert a.group == b.group == "0/image00002.jpg" and a.image is b.image  # one photo, decoded once
    assert sorted(n for _, n in report.missing_points) == [2, 3]
    # AFLW-19 is AFLW-21 without the ears: conversion keeps visibility
    conv, _ = load_dataset(DatasetSpec(str(db), scheme="aflw19"), progress=False)
    ca = next(s for s in conv if s.source.endswith("#face40000"))
    assert ca.scheme == "aflw19" and ca.points.shape == (19, 2) and not ca.visible[:3].any() and ca.visible[3:].all()
    np.testing.assert_allclose(ca.points[18], _pts(21, 3)[20], atol=1e-4)  # chin
    with pytest.raises(DataError, match="no splits"):
        load_dataset(f"{db}@test", progress=False)


def test_aflw_sqlite_rejects_other_databases(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(DataError, match="not an AFLW database"):
        load_aflw_sqlite(db, progress=False)


# ---------------------------------------------------------------- AFLW-19 .mat


def _aflw19_mat(root: Path, n: int = 5) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """AFLWinfo_release.mat's variables: data N x 38, bbox N x 4 (l r t b), mask_new N x 19, nameList cell, ra."""
    data = np.stack([_pts(19, 10 + i).T.reshape(-1) for i in range(n)])  # 19 x then 19 y
    vis = np.ones((n, 19))
    vis[1, [0, 15]] = 0
    vis[3, 18] = 0
    names = np.empty((n, 1), dtype=object)
    for i in range(n):
        names[i, 0] = f"{i % 3}/image{i:05d}.jpg"
        _image(root / "data" / "flickr" / names[i, 0], seed=20 + i)
    ra = np.array([[3, 1, 5, 2, 4]], dtype=np.float64)  # 1-based permutation, as MATLAB's randperm
    bbox = np.array([[5.0 + i, 70.0, 4.0, 55.0 - i] for i in range(n)])
    path = root / "AFLWinfo_release.mat"
    scipy.io.savemat(path, {"data": data, "bbox": bbox, "mask_new": vis, "nameList": names, "ra": ra})
    return path, data, vis, bbox


def test_aflw19_mat_points_visibility_and_splits(tmp_path: Path) -> None:
    path, data, vis, _ = _aflw19_mat(tmp_path)
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


# ---------------------------------------------------------------- WFLW


def _wflw_line(pts: np.ndarray, box: list[float], flags: list[int], name: str) -> str:
    nums = [f"{v:.6f}" for v in pts.reshape(-1)] + [str(int(v)) for v in box] + [str(v) for v in flags]
    return " ".join(nums + [name])


def _wflw(root: Path) -> tuple[Path, list[np.ndarray]]:
    """The release's layout: WFLW_annotations/list_98pt_rect_attr_train_test/*.txt beside WFLW_images/."""
    ann = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    ann.mkdir(parents=True)
    pts = [_pts(98, 30 + i) for i in range(3)]
    for i in range(2):
        _image(root / "WFLW_images" / "0--Parade" / f"0_Parade_{i}.jpg", seed=40 + i)
    lines = [
        _wflw_line(pts[0], [3, 4, 70, 58], [1, 0, 0, 0, 1, 0], "0--Parade/0_Parade_0.jpg"),
        _wflw_line(pts[1], [2, 2, 75, 55], [0, 1, 0, 0, 1, 0], "0--Parade/0_Parade_0.jpg"),
        _wflw_line(pts[2], [1, 1, 60, 50], [0, 0, 0, 0, 0, 0], "0--Parade/0_Parade_1.jpg"),
        "1.0 2.0 0--Parade/broken.jpg",
    ]
    path = ann / "list_98pt_rect_attr_test.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, pts


def test_wflw_txt_points_boxes_attributes(tmp_path: Path) -> None:
    path, pts = _wflw(tmp_path)
    assert detect_format(path) == "wflw-txt"
    samples, report = load_dataset(str(path), progress=False)
    assert len(samples) == 3 and len(report.bad_records) == 1 and "4" in report.bad_records[0][0]
    for s, p in zip(samples, pts):
        np.testing.assert_allclose(s.points, p, atol=1e-4)
        assert s.scheme == "wflw98" and s.split == "test" and s.visible is None
    np.testing.assert_array_equal(samples[0].box, [3, 4, 70, 58])
    assert samples[0].attributes == {"pose": True, "expression": False, "illumination": False, "make-up": False,
                                     "occlusion": True, "blur": False}
    assert samples[0].group == samples[1].group != samples[2].group
    assert samples[0].image.shape == (60, 80, 3)


def test_wflw_attribute_subsets_and_normaliser(tmp_path: Path) -> None:
    path, _ = _wflw(tmp_path)
    samples, _ = load_wflw_txt(path, progress=False)
    scheme = load_scheme("wflw98")
    gt = np.stack([s.points for s in samples]).astype(np.float64)
    pred = gt.copy()
    pred[:, :, 0] += np.array([1.0, 2.0, 4.0])[:, None]  # face k is off by its shift at every point
    iod = np.linalg.norm(gt[:, 60] - gt[:, 72], axis=1)
    subsets = attribute_subsets(samples, pred, scheme, name="m", dataset="wflw")
    assert [r.name for r in subsets] == ["m [pose]", "m [expression]", "m [occlusion]"]  # no face has the others
    pose, expr, occl = subsets
    assert pose.n_faces == 1 and pose.nme_mean == pytest.approx(100 * 1.0 / iod[0])
    assert expr.nme_mean == pytest.approx(100 * 2.0 / iod[1])
    assert occl.n_faces == 2 and occl.nme_mean == pytest.approx(100 * np.mean([1.0 / iod[0], 2.0 / iod[1]]))
    assert "60 (eye_r_0)" in occl.normalised_by and "72 (eye_l_4)" in occl.normalised_by


def test_wflw_converts_to_ibug68(tmp_path: Path) -> None:
    path, pts = _wflw(tmp_path)
    samples, _ = load_dataset(DatasetSpec(str(path), scheme="ibug68"), progress=False)
    s = samples[0]
    assert s.scheme == "ibug68" and s.attributes["pose"]
    for i68, i98 in ((0, 0), (8, 16), (16, 32), (36, 60), (45, 72), (30, 54), (48, 76), (54, 82), (67, 95)):
        np.testing.assert_allclose(s.points[i68], pts[0][i98], atol=1e-4)


# ---------------------------------------------------------------- COFW


def _cofw_arrays(n: int = 3) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), rng.integers(0, 255, (50, 70), dtype=np.uint8),
              rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)][:n]
    phis = np.zeros((n, 87))
    for i in range(n):
        p = _pts(29, 50 + i, w=60, h=48) + 1.0  # MATLAB: 1-based
        phis[i, :29], phis[i, 29:58] = p[:, 0], p[:, 1]
    phis[0, 58 + np.array([3, 22])] = 1  # two occluded points
    boxes = np.array([[4.0, 5.0, 50.0, 40.0], [2.0, 3.0, 60.0, 45.0], [1.0, 1.0, 55.0, 55.0]])[:n]
    return images, phis, boxes


def _cell(items: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((len(items), 1), dtype=object)  # MATLAB's N x 1 cell array
    for i, item in enumerate(items):
        cell[i, 0] = item
    return cell


def _write_mat73(path: Path, variables: dict[str, np.ndarray | list[np.ndarray]]) -> None:
    """A MATLAB v7.3 file as MATLAB writes one: HDF5 behind a 512-byte header, arrays stored
    transposed, an N x 1 cell as a 1 x N dataset of references into ``#refs#``."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            if isinstance(value, list):
                targets = []
                for i, item in enumerate(value):
                    d = refs.create_dataset(f"{name}{i}", data=np.asarray(item).T)
                    d.attrs["MATLAB_class"] = np.bytes_(str(np.asarray(item).dtype))
                    targets.append(d.ref)
                ds = f.create_dataset(name, data=np.array([targets], dtype=h5py.ref_dtype))
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                ds = f.create_dataset(name, data=np.asarray(value, dtype=np.float64).T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


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
    images, phis, boxes = _cofw_arrays()
    path = tmp_path / "COFW_test_color.mat"
    scipy.io.savemat(path, {"IsT": _cell(images), "phisT": phis, "bboxesT": boxes})
    assert detect_format(path) == "cofw-mat"
    samples, report = load_dataset(str(path), progress=False)
    _check_cofw(samples, images, phis, "test")
    assert report.occluded_points == [(samples[0].source, 2)]


def test_cofw_train_mat_v73(tmp_path: Path) -> None:
    images, phis, boxes = _cofw_arrays()
    path = tmp_path / "COFW_train_color.mat"
    _write_mat73(path, {"IsTr": images, "phisTr": phis, "bboxesTr": boxes})
    assert path.read_bytes()[:10] == b"MATLAB 7.3"
    assert detect_format(path) == "cofw-mat"
    samples, _ = load_dataset(f"{path}@train", progress=False)
    _check_cofw(samples, images, phis, "train")


def test_cofw_malformed(tmp_path: Path) -> None:
    images, phis, boxes = _cofw_arrays()
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"IsT": _cell(images), "phisT": phis[:, :58], "bboxesT": boxes})
    with pytest.raises(DataError, match="87"):
        load_cofw_mat(path, progress=False)
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"x": np.zeros(3)})
    with pytest.raises(DataError, match="neither COFW"):
        detect_format(other)


# ---------------------------------------------------------------- evaluation with visibility and boxes


def test_visible_only_and_all_points_nme() -> None:
    scheme = load_scheme("cofw29")
    gt = np.zeros((2, 29, 2))
    gt[:, :, 0] = np.arange(29)
    gt[:, 9] = [20.0, 0.0]  # normaliser: points 8 (8, 0) and 9 (20, 0) are 12 px apart
    pred = gt.copy()
    pred[:, 5] += [0.0, 29 * 1.2]  # one point off by 34.8 px: all-points mean error 1.2 px
    visible = np.ones((2, 29), bool)
    visible[0, 5] = False  # face 0: the bad point is occluded
    res = compute_metrics(pred, gt, None, scheme, name="m", dataset="d", visible=visible)
    np.testing.assert_allclose(res.errors, [0.1, 0.1])
    np.testing.assert_allclose(res.errors_visible, [0.0, 0.1])  # face 1 has every point visible
    assert res.nme_mean == pytest.approx(10.0) and res.nme_visible_mean == pytest.approx(5.0)
    assert "NME vis %" in markdown_table([res]) and res.to_dict()["nme_visible_mean"] == pytest.approx(
        res.nme_visible_mean)
    plain = compute_metrics(pred, gt, None, scheme, name="m", dataset="d")
    assert plain.errors_visible is None and "NME vis" not in markdown_table([plain])


def test_box_normalised_nme_for_aflw() -> None:
    scheme = load_scheme("aflw19")
    gt = np.random.default_rng(0).uniform(10, 90, (2, 19, 2))
    pred = gt + [3.0, 4.0]  # every point 5 px off
    boxes = np.array([[0.0, 0.0, 40.0, 90.0], [np.nan] * 4])  # face 1 has no box: its points' tight box
    res = compute_metrics(pred, gt, None, scheme, name="m", dataset="d", boxes=boxes)
    tight = np.sqrt(np.prod(gt[1].max(0) - gt[1].min(0)))
    np.testing.assert_allclose(res.errors, [5 / 60.0, 5 / tight])
    assert res.normaliser is None and "face box" in res.normalised_by and "face box" in res.to_markdown()


# ---------------------------------------------------------------- custom scheme from a file


SCHEME_YAML = """name: my5
description: five points for a test
points: [eye_left, eye_right, nose, mouth_left, mouth_right]
flip_pairs: [[0, 1], [3, 4]]
regions:
  eyes: [0, 1]
  nose: [2]
  mouth: [3, 4]
normalise: [0, 1]
"""


def _five(pts68: np.ndarray) -> np.ndarray:
    return np.stack([pts68[36:42].mean(0), pts68[42:48].mean(0), pts68[30], pts68[48], pts68[54]])


def _custom_data(root: Path, n: int = 24) -> tuple[Path, Path, list[np.ndarray]]:
    """Synthetic faces with five points as CSV (train/test split, an occluded mouth corner, a 'glasses'
    attribute) and the same faces as JSON."""
    (root / "img").mkdir(parents=True)
    scheme = root / "my_scheme.yaml"
    scheme.write_text(SCHEME_YAML)
    names = ["eye_left", "eye_right", "nose", "mouth_left", "mouth_right"]
    header = ["image"] + [f"{p}_{a}" for p in names for a in ("x", "y")] + ["mouth_left_visible", "split",
                                                                           "attr_glasses"]
    rows, faces, five = [], [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        img, pts = synthetic_face(64, seed=i)
        canvas = np.full((80, 80, 3), 40, np.uint8)
        dx, dy = (int(v) for v in rng.integers(0, 16, 2))
        canvas[dy:dy + 64, dx:dx + 64] = img
        Image.fromarray(canvas).save(root / "img" / f"f{i:02d}.png")
        p = _five(pts) + [dx, dy]
        five.append(p)
        occluded = i % 4 == 0
        rows.append([f"img/f{i:02d}.png"] + [f"{v:.3f}" for v in p.reshape(-1)]
                    + ["0" if occluded else "1", "test" if i % 6 == 0 else "train", str(int(i % 3 == 0))])
        faces.append({"image": f"img/f{i:02d}.png", "points": p.tolist(), "visible": [True, True, True, not occluded,
                      True], "attributes": {"glasses": i % 3 == 0}, "box": [dx, dy, dx + 64, dy + 64]})
    csv_path = root / "faces.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    json_path = root / "faces.json"
    json_path.write_text(json.dumps({"faces": faces}))
    return scheme, csv_path, five


def test_custom_csv_and_json(tmp_path: Path) -> None:
    scheme, csv_path, five = _custom_data(tmp_path, n=6)
    assert detect_format(csv_path) == "points-csv" and detect_format(tmp_path / "faces.json") == "points-json"
    samples, report = load_dataset(DatasetSpec(str(csv_path), scheme=str(scheme)), progress=False)
    assert len(samples) == 6 and samples[0].scheme == "my5"
    np.testing.assert_allclose(samples[3].points, five[3], atol=1e-3)
    assert samples[0].visible.tolist() == [True, True, True, False, True] and samples[1].visible.all()
    assert [s.split for s in samples] == ["test"] + ["train"] * 5
    assert [s.attributes["glasses"] for s in samples] == [True, False, False, True, False, False]
    assert len(report.occluded_points) == 2
    js, _ = load_dataset(DatasetSpec(str(tmp_path / "faces.json"), scheme=str(scheme)), progress=False)
    for a, b in zip(js, samples):
        np.testing.assert_allclose(a.points, b.points, atol=1e-3)
        assert a.visible.tolist() == b.visible.tolist() and a.attributes == b.attributes
    np.testing.assert_allclose(js[2].box[2:] - js[2].box[:2], [64, 64])
    assert (js[2].box[:2] <= five[2].min(0)).all() and samples[2].box is None
    test_only, _ = load_dataset(DatasetSpec(f"{csv_path}@test", scheme=str(scheme)), progress=False)
    assert len(test_only) == 1
    with pytest.raises(DataError, match="scheme"):  # no scheme given and none beside the file
        load_dataset(str(csv_path), progress=False)
    (tmp_path / "faces.yaml").write_text(SCHEME_YAML)  # <stem>.yaml beside the points names the scheme
    assert load_dataset(str(csv_path), progress=False)[0][0].scheme == "my5"
    with pytest.raises(DataError, match="eye_image_left_x.*'five'"):
        load_points_csv(csv_path, scheme="five", progress=False)


def test_occluded_points_leave_the_loss(tmp_path: Path) -> None:
    from facepoints.train import LandmarkDataset, TrainConfig

    scheme, csv_path, _ = _custom_data(tmp_path, n=4)
    samples, _ = load_dataset(DatasetSpec(str(csv_path), scheme=str(scheme)), progress=False)
    cfg = TrainConfig()
    cfg.model.input_size = 32
    _, target, mask, _, _ = LandmarkDataset(samples, cfg, load_scheme(scheme), train=False)[0]
    assert mask.tolist() == [True, True, True, False, True] and float(target[3].abs().sum()) == 0.0
    assert LandmarkDataset(samples, cfg, load_scheme(scheme), train=False)[1][2].all()


def test_custom_scheme_trains_from_yaml_and_evaluates(tmp_path: Path) -> None:
    """`facepoints train CONFIG --scheme my_scheme.yaml` on custom CSV points, then evaluation on the same
    faces as JSON (read in the model's scheme), with visible-only NME and the attribute subset."""
    import torch

    from facepoints.cli import app
    from facepoints.geometry import tight_box
    from facepoints.jobs import evaluate_model
    from facepoints.checkpoint import predict_checkpoint

    scheme, csv_path, _ = _custom_data(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", str(ROOT / "configs" / "seed_baseline.yaml"), "--scheme", str(scheme),
            "-o", f"data.train=[{{path: {csv_path}@train, format: points-csv}}]",
            "-o", f"data.val=[{{path: {csv_path}@test}}]", "-o", f"out_dir={run}",
            "-o", "model.input_size=32", "-o", "model.kwargs={widths: [8, 16], hidden: [32]}",
            "-o", "optim.batch_size=8", "-o", "optim.epochs=2", "-o", "workers=0", "-o", "threads=1",
            "-o", "augment.blur_p=0", "-o", "name=five_points"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert ck["scheme"]["name"] == "my5" and ck["scheme"]["points"][2] == "nose"
    assert ck["config"]["data"]["scheme"] == str(scheme.resolve())
    assert "train faces: 20, validation faces: 4" in result.output and "occluded" in result.output

    samples, _ = load_dataset(DatasetSpec(str(csv_path), scheme=str(scheme)), progress=False)
    pred, _, sch = predict_checkpoint(run / "best.pt", [s.image for s in samples[:3]],
                                      [tight_box(s.points) for s in samples[:3]])
    assert pred.shape == (3, 5, 2) and sch.name == "my5" and sch.flip_permutation().tolist() == [1, 0, 2, 4, 3]

    results = evaluate_model(str(run / "best.pt"), [str(tmp_path / "data" / "faces.json")], tmp_path / "eval")
    assert [r.name for r in results] == ["five_points", "five_points [glasses]"]
    full, glasses = results
    assert full.n_faces == 24 and glasses.n_faces == 8 and full.scheme == "my5"
    assert np.isfinite(full.nme_mean) and np.isfinite(full.nme_visible_mean)
    assert full.errors_visible is not None and not np.allclose(full.errors_visible, full.errors)
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "NME vis %" in report and "five_points [glasses]" in report and "eye_left" in report
    assert (tmp_path / "eval" / "faces" / "subsets_ced.png").stat().st_size > 2000


def test_flip_without_flip_table_is_refused(tmp_path: Path) -> None:
    from facepoints.cli import app
    from facepoints.train import load_train_config, train

    _, csv_path, _ = _custom_data(tmp_path / "data", n=8)
    noflip = tmp_path / "noflip.yaml"
    noflip.write_text(SCHEME_YAML.replace("name: my5", "name: noflip").replace("flip_pairs: [[0, 1], [3, 4]]\n", ""))
    base = ["-o", f"data.train=[{{path: {csv_path}, format: points-csv}}]", "-o", f"out_dir={tmp_path / 'run'}",
            "-o", "model.input_size=32", "-o", "optim.epochs=1", "-o", "workers=0", "-o", "data.val_fraction=0.5"]
    result = CliRunner().invoke(app, ["train", str(ROOT / "configs" / "seed_baseline.yaml"), "--scheme", str(noflip),
                                      *base])
    assert result.exit_code != 0
    assert "no flip table" in result.output and "augment.flip" in result.output
    assert not (tmp_path / "run" / "cleaning_report.txt").exists()  # refused before reading any data
    cfg = load_train_config(ROOT / "configs" / "seed_baseline.yaml", [b for b in base if b != "-o"]
                            + [f"data.scheme={noflip}"])
    with pytest.raises(SchemeError, match="no flip table.*augment.flip"):
        train(cfg, progress=False)


def test_readme_custom_format_examples_load(tmp_path: Path) -> None:
    """The README's scheme, CSV and JSON examples are the format the loaders read."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Other datasets and custom point schemes"):text.index("## Training")]
    yaml_block = section[section.index("# my_scheme.yaml"):]
    (tmp_path / "my_scheme.yaml").write_text(yaml_block[:yaml_block.index("```")])
    csv_block = section[section.index("image,eye_left_x"):]
    (tmp_path / "faces.csv").write_text(csv_block[:csv_block.index("```")])
    json_text = section[section.index('{"faces"'):section.index("; only `image`")].replace("`", "")
    (tmp_path / "faces.json").write_text(json_text)
    for name in ("a.jpg", "b.jpg"):
        _image(tmp_path / "photos" / name, w=200, h=200)
    scheme = str(tmp_path / "my_scheme.yaml")
    assert load_scheme(scheme).flip_permutation().tolist() == [1, 0, 2, 3]
    rows, _ = load_dataset(DatasetSpec(str(tmp_path / "faces.csv"), scheme=scheme), progress=False)
    assert [s.split for s in rows] == ["train", "test"] and rows[1].mask.tolist() == [True, True, True, False]
    np.testing.assert_allclose(rows[0].points[3], [122.0, 160.4], atol=1e-4)
    faces, _ = load_dataset(DatasetSpec(str(tmp_path / "faces.json"), scheme=scheme), progress=False)
    assert faces[0].visible.tolist() == [True, True, True, False] and faces[0].attributes == {"glasses": True}
    assert faces[0].group == "anna" and faces[0].box.tolist() == [80, 60, 160, 170]
