"""AFLW: the original ``aflw.sqlite`` release (21 points) and the AFLW-19 benchmark ``AFLWinfo_release.mat``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from facepoints.datasets.core import (
    CleaningReport,
    DataError,
    Policy,
    Record,
    Sample,
    build_samples,
    first_dir,
    select_split,
)
from facepoints.datasets.matlab import mat_str, mat_variables, read_mat
from facepoints.datasets.registry import Format, LoadOptions, register
from facepoints.schemes import load_scheme

AFLW19_TRAIN_FACES = 20000


def load_aflw19(path: Path, opts: LoadOptions, train_faces: int = AFLW19_TRAIN_FACES
                ) -> tuple[list[Sample], CleaningReport]:
    """AFLW-19 benchmark annotations, ``AFLWinfo_release.mat`` (AFLW-Full / AFLW-Frontal protocol).

    Variables: ``data`` (N x 38: 19 x then 19 y), ``bbox`` (N x 4: left,
    right, top, bottom), ``mask_new`` (N x 19, 1 = visible), ``nameList``
    (N x 1 cell of paths under AFLW's ``data/flickr/``) and ``ra`` (a
    1-based permutation: its first 20,000 faces train, the other 4,386 are
    the AFLW-Full test set). Every point has coordinates, occluded ones too.
    A face whose 19 points are all visible gets the attribute ``frontal``:
    the test faces with it are the AFLW-Frontal set (1,314 faces).
    Coordinates are AFLW's own pixel coordinates, read as they are.
    """
    mat = read_mat(path, ("data", "bbox", "mask_new", "nameList", "ra"))
    missing = [v for v in ("data", "mask_new", "nameList") if v not in mat]
    if missing:
        raise DataError(f"{path}: no {missing} variables; not an AFLW-19 AFLWinfo_release.mat")
    scheme = load_scheme("aflw19")
    k = scheme.num_points
    coords = np.asarray(mat["data"], dtype=np.float64)
    vis = np.asarray(mat["mask_new"], dtype=np.float64)
    names = np.asarray(mat["nameList"], dtype=object).reshape(-1)
    n = len(names)
    if coords.shape != (n, 2 * k) or vis.shape != (n, k):
        raise DataError(f"{path}: expected data {n} x {2 * k} and mask_new {n} x {k}, got {coords.shape}, {vis.shape}")
    boxes = np.asarray(mat["bbox"], dtype=np.float64) if "bbox" in mat else None
    if boxes is not None and boxes.shape != (n, 4):
        raise DataError(f"{path}: bbox should be {n} x 4, is {boxes.shape}")
    splits = [""] * n
    if "ra" in mat:
        order = np.asarray(mat["ra"], dtype=np.int64).reshape(-1) - 1
        if sorted(order.tolist()) != list(range(n)):
            raise DataError(f"{path}: ra is not a permutation of 1..{n}")
        for rank, idx in enumerate(order):
            splits[idx] = "train" if rank < train_faces else "test"
    root = opts.images if opts.images is not None else first_dir(
        [path.parent / "data" / "flickr", path.parent / "flickr"], path.parent)
    report = CleaningReport(dataset=str(path), policy=opts.policy)
    records: list[Record] = []
    for i in range(n):
        try:
            name = mat_str(names[i])
        except ValueError as e:
            report.reject_malformed(f"{path}#nameList[{i + 1}]", str(e), "malformed name")
            continue
        visible = vis[i] > 0.5
        box = None
        if boxes is not None:
            left, right, top, bottom = boxes[i]
            box = np.array([left, top, right, bottom])
        pts = np.stack([coords[i, :k], coords[i, k:]], axis=1)
        records.append(Record(root / name, pts, f"{root / name}#{i + 1}", name, visible=visible, box=box,
                               attributes={"frontal": bool(visible.all())}, split=splits[i]))
    records = select_split(records, opts.split, str(path))
    return build_samples(records, scheme, opts.policy, report, opts.progress), report


AFLW_TABLES = ("Faces", "FaceImages", "FeatureCoords")


def _read_tables(con: sqlite3.Connection, path: Path) -> tuple[list, dict, dict, dict]:
    """(faces with their photo, points by face, first box by face, attributes by face) from AFLW's tables."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = [t for t in AFLW_TABLES if t not in tables]
    if missing:
        raise DataError(f"{path}: no {missing} tables; not an AFLW database")
    faces = con.execute(
        "SELECT f.face_id, (SELECT i.filepath FROM FaceImages i WHERE i.file_id = f.file_id LIMIT 1) "
        "FROM Faces f ORDER BY 2, f.face_id").fetchall()
    coords: dict[int, list[tuple[int, float, float]]] = {}
    for face_id, feature_id, x, y in con.execute("SELECT face_id, feature_id, x, y FROM FeatureCoords"):
        coords.setdefault(face_id, []).append((feature_id, x, y))
    rects: dict[int, tuple[float, float, float, float]] = {}
    if "FaceRect" in tables:
        for face_id, x, y, w, h in con.execute("SELECT face_id, x, y, w, h FROM FaceRect ORDER BY rowid"):
            rects.setdefault(face_id, (x, y, w, h))
    meta: dict[int, dict[str, bool]] = {}
    if "FaceMetaData" in tables:
        for face_id, occluded, glasses in con.execute("SELECT face_id, occluded, glasses FROM FaceMetaData"):
            meta[face_id] = {"occluded": bool(occluded), "glasses": bool(glasses)}
    return faces, coords, rects, meta


def load_sqlite(path: Path, opts: LoadOptions) -> tuple[list[Sample], CleaningReport]:
    """The original AFLW release: ``aflw.sqlite`` and its image folder (``flickr/`` beside it by default).

    ``Faces`` ties each face to a ``FaceImages`` row (``filepath`` under the
    image folder); ``FeatureCoords`` holds its points by ``feature_id``
    1..21 (point ``feature_id - 1`` of ``aflw21``); a point that is not
    visible has no row, so it is masked and marked not visible.
    ``FaceRect`` (x, y, w, h) gives the box, ``FaceMetaData`` the
    ``occluded`` and ``glasses`` attributes. Faces are grouped by photo.
    """
    scheme = load_scheme("aflw21")
    k = scheme.num_points
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise DataError(f"{path}: cannot open as SQLite ({e})") from None
    try:
        faces, coords, rects, meta = _read_tables(con, path)
    except sqlite3.Error as e:
        raise DataError(f"{path}: not a readable AFLW database ({e})") from None
    finally:
        con.close()
    root = opts.images if opts.images is not None else first_dir([path.parent / "flickr"], path.parent)
    report = CleaningReport(dataset=str(path), policy=opts.policy)
    records: list[Record] = []
    for face_id, filepath in faces:
        src = f"{root / str(filepath)}#face{face_id}"
        if filepath is None:
            report.reject_unreadable(src, "face has no FaceImages row", "image missing")
            continue
        pts = np.full((k, 2), np.nan)
        bad = [fid for fid, _, _ in coords.get(face_id, []) if not 1 <= int(fid) <= k]
        for fid, x, y in coords.get(face_id, []):
            if 1 <= int(fid) <= k:
                pts[int(fid) - 1] = (x, y)
        if bad:
            report.bad_records.append((src, f"feature ids outside 1..{k} ignored: {sorted(set(bad))}"))
        box = None
        if face_id in rects:
            x, y, w, h = rects[face_id]
            box = np.array([x, y, x + w, y + h], dtype=np.float64)
        records.append(Record(root / str(filepath), pts, src, str(filepath), visible=np.isfinite(pts).all(axis=1),
                               box=box, attributes=meta.get(face_id, {})))
    return build_samples(records, scheme, opts.policy, report, opts.progress), report


def load_aflw19_mat(path: str | Path, images: str | Path | None = None, policy: Policy = "mask",
                    progress: bool = True, split: str | None = None, train_faces: int = AFLW19_TRAIN_FACES
                    ) -> tuple[list[Sample], CleaningReport]:
    opts = LoadOptions(images=None if images is None else Path(images), policy=policy, progress=progress, split=split)
    return load_aflw19(Path(path), opts, train_faces)


def load_aflw_sqlite(path: str | Path, images: str | Path | None = None, policy: Policy = "mask",
                     progress: bool = True) -> tuple[list[Sample], CleaningReport]:
    return load_sqlite(Path(path), LoadOptions(images=None if images is None else Path(images), policy=policy,
                                               progress=progress))


def _is_sqlite(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


register(Format("aflw-sqlite", load_sqlite, sniff=_is_sqlite, what="an AFLW aflw.sqlite database"))
register(Format("aflw19-mat", load_aflw19, sniff=lambda p: {"data", "mask_new", "nameList"} <= mat_variables(p),
                suffixes=(".mat",), splits=True, what="AFLW-19 (.mat with data, mask_new, nameList)"))
