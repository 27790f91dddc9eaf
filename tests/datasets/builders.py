"""Small files in each format's exact layout, written for the loader tests (never real data)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from tests.conftest import synthetic_face


def save_jpeg(path: Path, h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=95)
    return arr


def random_points(k: int = 68, w: int = 80, h: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(5, w - 5, k), rng.uniform(5, h - 5, k)], 1)


def write_youtube_csv(tmp: Path, rows: dict[str, np.ndarray | list]) -> Path:
    (tmp / "training").mkdir()
    csv_path = tmp / "training_frames_keypoints.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([""] + [str(i) for i in range(136)])
        for name, pts in rows.items():
            flat = ["" if (isinstance(v, float) and np.isnan(v)) else v for v in np.asarray(pts, dtype=object).ravel()]
            w.writerow([name, *flat])
    return csv_path


def save_png(path: Path, w: int = 80, h: int = 60, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def rounded_points(k: int, seed: int, w: int = 80, h: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(5, w - 5, k), rng.uniform(5, h - 5, k)], 1).round(2)


def aflw_db(root: Path) -> Path:
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
        pts = rounded_points(21, seed)
        con.executemany("INSERT INTO FeatureCoords VALUES (?, ?, ?, ?, 1)",
                        [(face, fid, float(x), float(y)) for fid, (x, y) in enumerate(pts, 1) if fid not in absent])
    con.executemany("INSERT INTO FaceRect VALUES (?, ?, ?, ?, ?, 1)", [(39341, 10, 12, 30, 35), (40000, 5, 6, 50, 40)])
    con.executemany("INSERT INTO FaceMetaData VALUES (?, 'f', ?, ?, 0, 1)", [(39341, 1, 0), (40000, 0, 1)])
    con.execute("INSERT INTO FacePose VALUES (39341, 0.1, 0.0, -0.5, 1)")
    con.commit()
    con.close()
    save_png(root / "flickr" / "0" / "image00002.jpg", seed=1)
    save_png(root / "flickr" / "2" / "image00013.jpg", seed=2)
    return db


def aflw19_mat(root: Path, n: int = 5) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """AFLWinfo_release.mat's variables: data N x 38, bbox N x 4 (l r t b), mask_new N x 19, nameList cell, ra."""
    data = np.stack([rounded_points(19, 10 + i).T.reshape(-1) for i in range(n)])  # 19 x then 19 y
    vis = np.ones((n, 19))
    vis[1, [0, 15]] = 0
    vis[3, 18] = 0
    names = np.empty((n, 1), dtype=object)
    for i in range(n):
        names[i, 0] = f"{i % 3}/image{i:05d}.jpg"
        save_png(root / "data" / "flickr" / names[i, 0], seed=20 + i)
    ra = np.array([[3, 1, 5, 2, 4]], dtype=np.float64)  # 1-based permutation, as MATLAB's randperm
    bbox = np.array([[5.0 + i, 70.0, 4.0, 55.0 - i] for i in range(n)])
    path = root / "AFLWinfo_release.mat"
    scipy.io.savemat(path, {"data": data, "bbox": bbox, "mask_new": vis, "nameList": names, "ra": ra})
    return path, data, vis, bbox


def wflw_line(pts: np.ndarray, box: list[float], flags: list[int], name: str) -> str:
    nums = [f"{v:.6f}" for v in pts.reshape(-1)] + [str(int(v)) for v in box] + [str(v) for v in flags]
    return " ".join(nums + [name])


def wflw_files(root: Path) -> tuple[Path, list[np.ndarray]]:
    """The release's layout: WFLW_annotations/list_98pt_rect_attr_train_test/*.txt beside WFLW_images/."""
    ann = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    ann.mkdir(parents=True)
    pts = [rounded_points(98, 30 + i) for i in range(3)]
    for i in range(2):
        save_png(root / "WFLW_images" / "0--Parade" / f"0_Parade_{i}.jpg", seed=40 + i)
    lines = [
        wflw_line(pts[0], [3, 4, 70, 58], [1, 0, 0, 0, 1, 0], "0--Parade/0_Parade_0.jpg"),
        wflw_line(pts[1], [2, 2, 75, 55], [0, 1, 0, 0, 1, 0], "0--Parade/0_Parade_0.jpg"),
        wflw_line(pts[2], [1, 1, 60, 50], [0, 0, 0, 0, 0, 0], "0--Parade/0_Parade_1.jpg"),
        "1.0 2.0 0--Parade/broken.jpg",
    ]
    path = ann / "list_98pt_rect_attr_test.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, pts


def cofw_arrays(n: int = 3) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), rng.integers(0, 255, (50, 70), dtype=np.uint8),
              rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)][:n]
    phis = np.zeros((n, 87))
    for i in range(n):
        p = rounded_points(29, 50 + i, w=60, h=48) + 1.0  # MATLAB: 1-based
        phis[i, :29], phis[i, 29:58] = p[:, 0], p[:, 1]
    phis[0, 58 + np.array([3, 22])] = 1  # two occluded points
    boxes = np.array([[4.0, 5.0, 50.0, 40.0], [2.0, 3.0, 60.0, 45.0], [1.0, 1.0, 55.0, 55.0]])[:n]
    return images, phis, boxes


def mat_cell(items: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((len(items), 1), dtype=object)  # MATLAB's N x 1 cell array
    for i, item in enumerate(items):
        cell[i, 0] = item
    return cell


def write_mat73(path: Path, variables: dict[str, np.ndarray | list[np.ndarray]]) -> None:
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


def five_points(pts68: np.ndarray) -> np.ndarray:
    return np.stack([pts68[36:42].mean(0), pts68[42:48].mean(0), pts68[30], pts68[48], pts68[54]])


def custom_data(root: Path, n: int = 24) -> tuple[Path, Path, list[np.ndarray]]:
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
        p = five_points(pts) + [dx, dy]
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
