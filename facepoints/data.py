"""Files -> samples: loaders for the public landmark formats, and cleaning.

Every loader returns the same ``Sample`` type and a ``CleaningReport``; bad
records are masked or dropped as the user chooses and always reported, never
silently lost. Coordinates follow ``facepoints.geometry`` (0-based pixels,
pixel centres at integers); formats with 1-based files are shifted on read.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import inspect
import json
import re
import sqlite3
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from facepoints.geometry import tight_box
from facepoints.schemes import PointScheme, convert_points, load_scheme

Policy = Literal["mask", "drop"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DataError(ValueError):
    """A dataset file cannot be read as the format it claims to be."""


@dataclass
class Sample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    points: np.ndarray  # (K, 2) float32 pixels; NaN where not annotated
    mask: np.ndarray  # (K,) bool: point is valid and enters losses and metrics
    source: str  # file the face came from
    scheme: str = "ibug68"
    group: str = ""  # identity/recording: validation splits hold out whole groups
    # (K,) bool where the format marks occlusion/visibility, else None. An
    # occluded point keeps its coordinates (mask True, visible False): it is
    # left out of the loss and of the visible-only NME, but not of the all-points NME.
    visible: np.ndarray | None = None
    attributes: dict[str, bool] = field(default_factory=dict)  # e.g. WFLW's pose, occlusion, blur flags
    box: np.ndarray | None = None  # (4,) x0, y0, x1, y1 face box from the file, if it has one
    split: str = ""  # the file's own train/test split, if it has one
    # The tight box the landmark model crops around, when it is not the box of
    # ``points``: after 68 -> 15 conversion it stays the 68-point box, so every
    # model shares one box convention (and one detector box map).
    landmark_box: np.ndarray | None = None
    convention: str = ""  # the annotators' markup habits (e.g. "300w", "youtube"); see models.HeatmapNet

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    @property
    def crop_box(self) -> np.ndarray:
        """The box the landmark model crops around: ``landmark_box`` if set, else the tight box of the valid points."""
        return self.landmark_box if self.landmark_box is not None else tight_box(self.points, self.mask)


@dataclass
class CleaningReport:
    """What cleaning found, per problem, with the files concerned."""

    dataset: str = ""
    policy: str = "mask"
    records: int = 0
    kept: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): always dropped
    missing_points: list[tuple[str, int]] = field(default_factory=list)  # (file, how many)
    out_of_range: list[tuple[str, int]] = field(default_factory=list)
    bad_records: list[tuple[str, str]] = field(default_factory=list)  # malformed annotation lines/files
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    occluded_points: list[tuple[str, int]] = field(default_factory=list)  # (file, how many): kept, out of the loss

    def reject_malformed(self, source: str, problem: str, dropped_as: str, face: str | None = None) -> None:
        """A record whose annotation cannot be read: counted, listed with its problem, dropped.

        ``face`` names the lost face when it differs from the faulty file (a bad ``.pts`` loses its image).
        """
        self.records += 1
        self.bad_records.append((source, problem))
        self.dropped.append((face or source, dropped_as))

    def reject_unreadable(self, source: str, problem: str, dropped_as: str) -> None:
        """A record whose image cannot be had: counted, listed with its problem, dropped."""
        self.records += 1
        self.unreadable.append((source, problem))
        self.dropped.append((source, dropped_as))

    def merge(self, other: CleaningReport) -> CleaningReport:
        out = CleaningReport(dataset=f"{self.dataset}+{other.dataset}".strip("+"), policy=self.policy)
        for name in ("records", "kept"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        for name in ("unreadable", "missing_points", "out_of_range", "bad_records", "dropped", "occluded_points"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"{self.dataset}: {self.records} records, {self.kept} kept, {len(self.dropped)} dropped "
            f"(policy: {self.policy})",
            f"  unreadable images: {len(self.unreadable)}",
            f"  faces with missing/NaN points: {len(self.missing_points)} "
            f"({sum(n for _, n in self.missing_points)} points)",
            f"  faces with points far outside the image: {len(self.out_of_range)} "
            f"({sum(n for _, n in self.out_of_range)} points)",
            f"  malformed annotations: {len(self.bad_records)}",
        ]
        if self.occluded_points:
            lines.append(f"  faces with occluded points (kept; out of the loss): {len(self.occluded_points)} "
                         f"({sum(n for _, n in self.occluded_points)} points)")
        for title, items in (("unreadable", self.unreadable), ("malformed", self.bad_records), ("dropped", self.dropped)):
            for f, why in items[:10]:
                lines.append(f"    {title}: {f}: {why}")
            if len(items) > 10:
                lines.append(f"    ... and {len(items) - 10} more {title}")
        return "\n".join(lines)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image fully (truncated files raise) as RGB uint8.

    PIL is used rather than OpenCV because OpenCV returns a half-grey image for
    a truncated JPEG with only a warning, which would poison training data.
    """
    try:
        with Image.open(path) as im:
            im.load()
            arr = _to_rgb8(im)
    except FileNotFoundError:
        raise
    except Exception as e:  # PIL raises many types for corrupt data
        raise DataError(f"cannot decode image {path}: {e}") from None
    return arr


def _to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = max(a.max(), 1.0)
        a = (a / (65535.0 if hi > 255 else 255.0) * 255.0).clip(0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def clean_points(
    points: np.ndarray, image_size: tuple[int, int], margin: float = 0.25
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Mask NaN/missing points and points far outside the image.

    A point counts as out of range when it lies more than ``margin`` times the
    image size beyond an edge: faces cut by the frame legitimately have points
    slightly outside, which the model should still learn.
    """
    pts = np.asarray(points, dtype=np.float32).copy()
    w, h = image_size
    finite = np.isfinite(pts).all(axis=1)
    lo_x, hi_x = -margin * w, (1 + margin) * w
    lo_y, hi_y = -margin * h, (1 + margin) * h
    with np.errstate(invalid="ignore"):
        inside = (pts[:, 0] >= lo_x) & (pts[:, 0] <= hi_x) & (pts[:, 1] >= lo_y) & (pts[:, 1] <= hi_y)
    out_of_range = finite & ~inside
    mask = finite & inside
    pts[~mask] = np.nan
    return pts, mask, int((~finite).sum()), int(out_of_range.sum())


@dataclass
class _Record:
    image_path: Path | None
    points: np.ndarray
    source: str
    group: str
    image: np.ndarray | None = None  # for formats that store pixels inline
    visible: np.ndarray | None = None
    box: np.ndarray | None = None
    attributes: dict[str, bool] = field(default_factory=dict)
    split: str = ""


def _select_split(records: list[_Record], split: str | None, where: str) -> list[_Record]:
    """The records of one split; an unknown split is an error, not an empty dataset."""
    if split is None:
        return records
    chosen = [r for r in records if r.split == split]
    if not chosen:
        have = sorted({r.split for r in records if r.split})
        raise DataError(f"{where} has no {split!r} split" + (f"; it has {have}" if have else "; it has no splits"))
    return chosen


def _build_samples(
    records: list[_Record], scheme: PointScheme, policy: Policy, report: CleaningReport, progress: bool
) -> list[Sample]:
    if policy not in ("mask", "drop"):
        raise ValueError(f"policy must be 'mask' or 'drop', not {policy!r}")
    samples: list[Sample] = []
    last: tuple[Path | None, np.ndarray | None] = (None, None)  # formats with several faces per photo decode it once
    for rec in tqdm(records, desc=f"reading {report.dataset}", disable=not progress, leave=False):
        report.records += 1
        if rec.points.shape != (scheme.num_points, 2):
            report.bad_records.append((rec.source, f"expected {scheme.num_points} points, got {rec.points.shape[0]}"))
            report.dropped.append((rec.source, "wrong number of points"))
            continue
        if rec.visible is not None and np.shape(rec.visible) != (scheme.num_points,):
            flags = f"expected {scheme.num_points} visibility flags, got {np.size(rec.visible)}"
            report.bad_records.append((rec.source, flags))
            report.dropped.append((rec.source, "wrong number of visibility flags"))
            continue
        if rec.image is not None:
            image = rec.image
        elif rec.image_path is not None and rec.image_path == last[0]:
            image = last[1]
        else:
            try:
                image = read_image(rec.image_path)
            except (DataError, OSError) as e:
                report.unreadable.append((rec.source, str(e)))
                report.dropped.append((rec.source, "unreadable image"))
                continue
            last = (rec.image_path, image)
        pts, mask, n_missing, n_out = clean_points(rec.points, (image.shape[1], image.shape[0]))
        if n_missing:
            report.missing_points.append((rec.source, n_missing))
        if n_out:
            report.out_of_range.append((rec.source, n_out))
        if mask.sum() < 2:
            report.dropped.append((rec.source, "fewer than two valid points"))
            continue
        if policy == "drop" and (n_missing or n_out):
            report.dropped.append((rec.source, "missing or out-of-range points"))
            continue
        visible = None if rec.visible is None else np.asarray(rec.visible, dtype=bool).copy()
        if visible is not None and (mask & ~visible).any():
            report.occluded_points.append((rec.source, int((mask & ~visible).sum())))
        box = None if rec.box is None else np.asarray(rec.box, dtype=np.float32).reshape(4)
        if box is not None and not np.isfinite(box).all():
            box = None
        samples.append(Sample(image, pts, mask, rec.source, scheme.name, rec.group, visible=visible,
                              attributes=dict(rec.attributes), box=box, split=rec.split))
    report.kept = len(samples)
    return samples


def _group_of(name: str) -> str:
    """Person/recording id from a frame name like ``Luis_Fonsi_21.jpg`` -> ``Luis_Fonsi``."""
    stem = Path(name).stem
    return re.sub(r"[_-]?\d+$", "", stem) or stem


def _float(s: str) -> float:
    s = s.strip()
    return float(s) if s else float("nan")


def load_youtube_csv(
    path: str | Path, images: str | Path | None = None, policy: Policy = "mask", progress: bool = True
) -> tuple[list[Sample], CleaningReport]:
    """Udacity/YouTube-Faces layout: CSV of ``file, x0, y0, ..., x67, y67`` (0-based pixels).

    The image folder defaults to the CSV's name before ``_frames_keypoints``
    (``training_frames_keypoints.csv`` -> ``training/``), else the CSV's folder.
    """
    path = Path(path)
    if images is None:
        stem = path.stem.replace("_frames_keypoints", "")
        images = path.parent / stem if (path.parent / stem).is_dir() else path.parent
    images = Path(images)
    scheme = load_scheme("ibug68")
    report = CleaningReport(dataset=str(path), policy=policy)
    records: list[_Record] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty")
        if len(header) < 3:
            raise DataError(f"{path} does not look like a keypoints CSV (header {header[:3]})")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            name = row[0]
            try:
                vals = np.array([_float(v) for v in row[1:]], dtype=np.float64)
            except ValueError as e:
                report.reject_malformed(f"{path}:{lineno}", f"non-numeric coordinate ({e})", "malformed row")
                continue
            if len(vals) % 2:
                report.reject_malformed(f"{path}:{lineno}", f"odd number of coordinates ({len(vals)})", "malformed row")
                continue
            records.append(_Record(images / name, vals.reshape(-1, 2), str(images / name), _group_of(name)))
    return _build_samples(records, scheme, policy, report, progress), report


def read_pts(path: str | Path) -> np.ndarray:
    """An iBUG ``.pts`` file as 0-based points (the files are 1-based)."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    m = re.search(r"\{(.*)\}", text, re.S)
    if not m:
        raise DataError(f"{path}: no '{{ ... }}' block of points")
    declared = re.search(r"n_points\s*:\s*(\d+)", text)
    rows = [line.split() for line in m.group(1).strip().splitlines() if line.strip()]
    try:
        pts = np.array([[float(a), float(b)] for a, b, *_ in rows], dtype=np.float64)
    except ValueError as e:
        raise DataError(f"{path}: bad coordinate line ({e})") from None
    if declared and int(declared.group(1)) != len(pts):
        raise DataError(f"{path}: header says {declared.group(1)} points, file has {len(pts)}")
    return pts.reshape(-1, 2) - 1.0


def write_pts(path: str | Path, points: np.ndarray) -> None:
    lines = ["version: 1", f"n_points: {len(points)}", "{"]
    lines += [f"{x + 1:.3f} {y + 1:.3f}" for x, y in np.asarray(points)]
    lines.append("}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_pts_folder(
    path: str | Path, policy: Policy = "mask", progress: bool = True, scheme: str = "ibug68"
) -> tuple[list[Sample], CleaningReport]:
    """A folder (searched recursively) of images with iBUG ``.pts`` files beside them."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    sch = load_scheme(scheme)
    report = CleaningReport(dataset=str(root), policy=policy)
    records: list[_Record] = []
    pts_files = sorted(root.rglob("*.pts"))
    if not pts_files:
        raise DataError(f"{root} holds no .pts files")
    for pts_file in pts_files:
        image = next((pts_file.with_suffix(s) for s in IMAGE_SUFFIXES + tuple(x.upper() for x in IMAGE_SUFFIXES)
                      if pts_file.with_suffix(s).exists()), None)
        if image is None:
            report.reject_unreadable(str(pts_file), "no image beside the .pts file", "image missing")
            continue
        try:
            pts = read_pts(pts_file)
        except (DataError, OSError) as e:
            report.reject_malformed(str(pts_file), str(e), "malformed .pts", face=str(image))
            continue
        records.append(_Record(image, pts, str(image), str(image.with_suffix(""))))
    return _build_samples(records, sch, policy, report, progress), report


KAGGLE_COLUMNS = [
    f"{name}_{axis}" for name in load_scheme("kaggle15").points for axis in ("x", "y")
]


def load_kaggle_csv(
    path: str | Path, policy: Policy = "mask", progress: bool = True
) -> tuple[list[Sample], CleaningReport]:
    """Kaggle Facial Keypoints CSV: 30 coordinate columns (often empty) and ``Image``, 96x96 grey pixels."""
    path = Path(path)
    scheme = load_scheme("kaggle15")
    report = CleaningReport(dataset=str(path), policy=policy)
    records: list[_Record] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "Image" not in reader.fieldnames:
            raise DataError(f"{path}: no 'Image' column; not a Kaggle keypoints CSV")
        columns = [c for c in KAGGLE_COLUMNS if c in reader.fieldnames]
        for lineno, row in enumerate(reader, start=2):
            src = f"{path}:{lineno}"
            try:
                pixels = np.array(row["Image"].split(), dtype=np.float64)
                side = int(round(np.sqrt(len(pixels))))
                if side * side != len(pixels) or side == 0 or not np.isfinite(pixels).all():
                    raise ValueError(f"{len(pixels)} pixel values do not make a square image")
                grey = pixels.clip(0, 255).astype(np.uint8).reshape(side, side)
            except (ValueError, AttributeError) as e:
                report.reject_unreadable(src, f"bad Image column ({e})", "unreadable image")
                continue
            vals = np.array([_float(row.get(c) or "") if c in columns else np.nan for c in KAGGLE_COLUMNS])
            records.append(_Record(None, vals.reshape(-1, 2), src, src, image=np.repeat(grey[..., None], 3, 2)))
    return _build_samples(records, scheme, policy, report, progress), report


# ---------------------------------------------------------------- MATLAB files

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _optional_module(name: str, why: str) -> Any:
    """scipy and h5py come with the training extras; the base install reads the other formats without them."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise DataError(f"{why} needs the Python package {name!r}: pip install 'facepoints[train]'") from None


def _is_hdf5(path: Path) -> bool:
    """MATLAB v7.3 files are HDF5 behind a 512-byte text header (COFW_train_color.mat is one)."""
    with open(path, "rb") as f:
        head = f.read(520)
    return head[:8] == _HDF5_SIGNATURE or head[512:520] == _HDF5_SIGNATURE


def mat_variables(path: str | Path) -> set[str]:
    """Names of the variables in a .mat file, without loading them."""
    p = Path(path)
    if _is_hdf5(p):
        h5py = _optional_module("h5py", "reading MATLAB v7.3 files")
        with h5py.File(p, "r") as f:
            return {k for k in f if not k.startswith("#")}
    sio = _optional_module("scipy.io", "reading .mat files")
    try:
        return {name for name, _, _ in sio.whosmat(p)}
    except Exception as e:  # scipy raises several types for files that are not .mat
        raise DataError(f"{p}: not a readable MATLAB file ({e})") from None


def _h5_value(f: Any, obj: Any) -> Any:
    h5py = _optional_module("h5py", "reading MATLAB v7.3 files")
    if isinstance(obj, h5py.Group):
        return {k: _h5_value(f, obj[k]) for k in obj}
    data = obj[()]
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if h5py.check_dtype(ref=obj.dtype) is not None:  # a cell array: references to its elements
        out = np.empty(data.shape, dtype=object)
        for idx in np.ndindex(data.shape):
            out[idx] = _h5_value(f, f[data[idx]])
        return out.T
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel())
    return np.asarray(data).T  # HDF5 holds MATLAB's column-major arrays with their axes reversed


def read_mat(path: str | Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The named variables of a .mat file (v5 via scipy, v7.3 via h5py), in MATLAB's axis order.

    Cell arrays come back as numpy object arrays, strings as ``str`` (v7.3)
    or 1-element string arrays (v5); ``_mat_str`` unwraps either.
    """
    p = Path(path)
    if _is_hdf5(p):
        h5py = _optional_module("h5py", "reading MATLAB v7.3 files")
        with h5py.File(p, "r") as f:
            return {n: _h5_value(f, f[n]) for n in names if n in f}
    sio = _optional_module("scipy.io", "reading .mat files")
    try:
        return dict(sio.loadmat(p, variable_names=list(names)))
    except Exception as e:  # as in mat_variables: scipy's error types vary with the damage
        raise DataError(f"{p}: not a readable MATLAB file ({e})") from None


def _mat_str(x: Any) -> str:
    while isinstance(x, np.ndarray):
        if x.dtype.kind in "US" and x.ndim <= 1 and x.size == 1:
            return str(x.reshape(-1)[0])
        if x.size != 1:
            raise ValueError(f"expected one string, got an array of shape {x.shape}")
        x = x.reshape(-1)[0]
    return str(x)


def _mat_image(x: Any) -> np.ndarray:
    """An image stored in a MATLAB cell (H x W grey or H x W x 3) as RGB uint8."""
    a = np.asarray(x)
    if a.dtype == object or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)) or 0 in a.shape:
        raise ValueError(f"not an image: array of shape {a.shape}, dtype {a.dtype}")
    if a.dtype != np.uint8:
        a = np.asarray(a, dtype=np.float64)
        a = (a * 255.0 if a.max() <= 1.0 else a).clip(0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


# ---------------------------------------------------------------- COFW


COFW_VARIABLES = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}


def load_cofw_mat(
    path: str | Path, policy: Policy = "mask", progress: bool = True, split: str | None = None
) -> tuple[list[Sample], CleaningReport]:
    """COFW ``COFW_train_color.mat`` / ``COFW_test_color.mat``: faces with 29 points and occlusion flags.

    ``IsTr``/``IsT`` are cell arrays of images, ``phisTr``/``phisT`` rows of
    29 x, 29 y and 29 flags (1 = occluded), ``bboxesTr``/``bboxesT`` rows of
    x, y, w, h. The coordinates are MATLAB's (1-based) and are shifted on read.
    Occluded points keep their coordinates and are marked not visible.
    """
    path = Path(path)
    names = mat_variables(path)
    present = {s: v for s, v in COFW_VARIABLES.items() if v[0] in names and v[1] in names}
    if not present:
        raise DataError(f"{path}: no IsTr/phisTr or IsT/phisT variables; not a COFW .mat file")
    scheme = load_scheme("cofw29")
    k = scheme.num_points
    report = CleaningReport(dataset=str(path), policy=policy)
    records: list[_Record] = []
    for part, (iv, pv, bv) in present.items():
        mat = read_mat(path, (iv, pv, bv))
        images = np.asarray(mat[iv], dtype=object).reshape(-1)
        phis = np.asarray(mat[pv], dtype=np.float64)
        if phis.ndim != 2 or phis.shape[1] != 3 * k or len(phis) != len(images):
            raise DataError(f"{path}: {pv} should be {len(images)} x {3 * k} (x, y, occlusion), is {phis.shape}")
        boxes = np.asarray(mat[bv], dtype=np.float64) if bv in mat else None
        if boxes is not None and boxes.shape != (len(images), 4):
            report.bad_records.append((f"{path}:{bv}", f"shape {boxes.shape}, expected {(len(images), 4)}; boxes ignored"))
            boxes = None
        for i in range(len(images)):
            src = f"{path}#{iv}[{i + 1}]"
            try:
                image = _mat_image(images[i])
            except ValueError as e:
                report.reject_unreadable(src, str(e), "unreadable image")
                continue
            pts = np.stack([phis[i, :k], phis[i, k:2 * k]], axis=1) - 1.0
            box = None
            if boxes is not None:
                x, y, w, h = boxes[i]
                box = np.array([x - 1.0, y - 1.0, x - 1.0 + w, y - 1.0 + h])
            records.append(_Record(None, pts, src, src, image=image, visible=phis[i, 2 * k:] < 0.5,
                                   box=box, split=part))
    records = _select_split(records, split, str(path))
    return _build_samples(records, scheme, policy, report, progress), report


# ---------------------------------------------------------------- AFLW


AFLW19_TRAIN_FACES = 20000


def _first_dir(candidates: list[Path], fallback: Path) -> Path:
    return next((c for c in candidates if c.is_dir()), fallback)


def load_aflw19_mat(
    path: str | Path,
    images: str | Path | None = None,
    policy: Policy = "mask",
    progress: bool = True,
    split: str | None = None,
    train_faces: int = AFLW19_TRAIN_FACES,
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
    path = Path(path)
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
    root = Path(images) if images is not None else _first_dir(
        [path.parent / "data" / "flickr", path.parent / "flickr"], path.parent)
    report = CleaningReport(dataset=str(path), policy=policy)
    records: list[_Record] = []
    for i in range(n):
        try:
            name = _mat_str(names[i])
        except ValueError as e:
            report.reject_malformed(f"{path}#nameList[{i + 1}]", str(e), "malformed name")
            continue
        visible = vis[i] > 0.5
        box = None
        if boxes is not None:
            left, right, top, bottom = boxes[i]
            box = np.array([left, top, right, bottom])
        pts = np.stack([coords[i, :k], coords[i, k:]], axis=1)
        records.append(_Record(root / name, pts, f"{root / name}#{i + 1}", name, visible=visible, box=box,
                               attributes={"frontal": bool(visible.all())}, split=splits[i]))
    records = _select_split(records, split, str(path))
    return _build_samples(records, scheme, policy, report, progress), report


AFLW_TABLES = ("Faces", "FaceImages", "FeatureCoords")


def load_aflw_sqlite(
    path: str | Path, images: str | Path | None = None, policy: Policy = "mask", progress: bool = True
) -> tuple[list[Sample], CleaningReport]:
    """The original AFLW release: ``aflw.sqlite`` and its image folder (``flickr/`` beside it by default).

    ``Faces`` ties each face to a ``FaceImages`` row (``filepath`` under the
    image folder); ``FeatureCoords`` holds its points by ``feature_id``
    1..21 (point ``feature_id - 1`` of ``aflw21``); a point that is not
    visible has no row, so it is masked and marked not visible.
    ``FaceRect`` (x, y, w, h) gives the box, ``FaceMetaData`` the
    ``occluded`` and ``glasses`` attributes. Faces are grouped by photo.
    """
    path = Path(path)
    scheme = load_scheme("aflw21")
    k = scheme.num_points
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise DataError(f"{path}: cannot open as SQLite ({e})") from None
    try:
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
    except sqlite3.Error as e:
        raise DataError(f"{path}: not a readable AFLW database ({e})") from None
    finally:
        con.close()
    root = Path(images) if images is not None else _first_dir([path.parent / "flickr"], path.parent)
    report = CleaningReport(dataset=str(path), policy=policy)
    records: list[_Record] = []
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
        records.append(_Record(root / str(filepath), pts, src, str(filepath), visible=np.isfinite(pts).all(axis=1),
                               box=box, attributes=meta.get(face_id, {})))
    return _build_samples(records, scheme, policy, report, progress), report


# ---------------------------------------------------------------- WFLW


WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "make-up", "occlusion", "blur")


def load_wflw_txt(
    path: str | Path, images: str | Path | None = None, policy: Policy = "mask", progress: bool = True
) -> tuple[list[Sample], CleaningReport]:
    """WFLW ``list_98pt_rect_attr_{train,test}.txt``: per line 196 coordinates (x0 y0 ... x97 y97),
    the box x_min y_min x_max y_max, six 0/1 flags (pose, expression, illumination, make-up,
    occlusion, blur) and the image path under ``WFLW_images/``.

    The image folder defaults to the nearest ``WFLW_images`` beside the file
    or up to three folders above it (the release's layout). The split is read
    from the file name; faces are grouped by photo.
    """
    path = Path(path)
    k = 98
    if images is None:
        images = _first_dir([p / "WFLW_images" for p in list(path.parents)[:4]], path.parent)
    images = Path(images)
    scheme = load_scheme("wflw98")
    part = "train" if "train" in path.stem else "test" if "test" in path.stem else ""
    report = CleaningReport(dataset=str(path), policy=policy)
    records: list[_Record] = []
    width = 2 * k + 4 + len(WFLW_ATTRIBUTES)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            src = f"{path}:{lineno}"
            try:
                if len(fields) < width + 1:
                    raise ValueError(f"{len(fields)} fields, expected {width + 1}")
                vals = np.array([float(v) for v in fields[:2 * k + 4]])
                flags = [int(v) for v in fields[2 * k + 4:width]]
                if any(v not in (0, 1) for v in flags):
                    raise ValueError(f"attribute flags must be 0 or 1, got {flags}")
            except ValueError as e:
                report.reject_malformed(src, str(e), "malformed line")
                continue
            name = " ".join(fields[width:])
            records.append(_Record(images / name, vals[:2 * k].reshape(k, 2), f"{images / name}#{lineno}", name,
                                   box=vals[2 * k:], attributes=dict(zip(WFLW_ATTRIBUTES, map(bool, flags))),
                                   split=part))
    return _build_samples(records, scheme, policy, report, progress), report


# ---------------------------------------------------------------- custom points


def custom_scheme(
    points_file: str | Path, scheme: str | Path | PointScheme | None, default: str | PointScheme | None = None
) -> PointScheme:
    """The scheme of a custom points file: the one given, else ``<file stem>.yaml`` beside it, else ``default``."""
    if scheme is not None:
        return load_scheme(scheme)
    sidecar = Path(points_file).with_suffix(".yaml")
    if sidecar.is_file():
        return load_scheme(sidecar)
    if default is not None:
        return load_scheme(default)
    raise DataError(f"{points_file}: custom points need their scheme: give the YAML file (dataset scheme:, "
                    f"data.scheme or --scheme) or put it beside the points as {sidecar.name}")


def _flag(text: Any, default: bool) -> bool:
    if text is None or (isinstance(text, str) and not text.strip()):
        return default
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "y", "t", "1.0"):
        return True
    if t in ("0", "false", "no", "n", "f", "0.0"):
        return False
    raise ValueError(f"{text!r} is not a yes/no flag")


BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")


def load_points_csv(
    path: str | Path,
    images: str | Path | None = None,
    policy: Policy = "mask",
    progress: bool = True,
    scheme: str | Path | PointScheme | None = None,
    split: str | None = None,
    default_scheme: str | PointScheme | None = None,
) -> tuple[list[Sample], CleaningReport]:
    """Custom points as CSV, one face per row, for any scheme (see the README).

    Columns: ``image`` (path relative to the CSV's folder or ``images``),
    ``<point>_x`` and ``<point>_y`` for every point name of the scheme (empty
    = not annotated), and optionally ``<point>_visible`` (0 = occluded),
    ``box_x0, box_y0, box_x1, box_y1``, ``split``, ``group`` and
    ``attr_<name>`` 0/1 columns (evaluated as subsets). 0-based pixels.
    """
    path = Path(path)
    sch = custom_scheme(path, scheme, default_scheme)
    root = Path(images) if images is not None else path.parent
    report = CleaningReport(dataset=str(path), policy=policy)
    records: list[_Record] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = fields
        xy = [(f"{p}_x", f"{p}_y") for p in sch.points]
        missing = [c for pair in xy for c in pair if c not in fields]
        if "image" not in fields or missing:
            what = ["image"] if "image" not in fields else []
            raise DataError(f"{path}: no column(s) {(what + missing)[:6]}{' ...' if len(missing) > 6 else ''} "
                            f"for scheme {sch.name!r} ({sch.num_points} points); is it the right scheme?")
        vis_cols = [f"{p}_visible" for p in sch.points]
        has_vis = any(c in fields for c in vis_cols)
        has_box = all(c in fields for c in BOX_COLUMNS)
        attr_cols = [c for c in fields if c.startswith("attr_")]
        for lineno, row in enumerate(reader, start=2):
            src = f"{path}:{lineno}"
            try:
                pts = np.array([[_float(row[cx] or ""), _float(row[cy] or "")] for cx, cy in xy])
                visible = np.array([_flag(row.get(c), True) for c in vis_cols]) if has_vis else None
                box = np.array([_float(row[c] or "") for c in BOX_COLUMNS]) if has_box else None
                attributes = {c[len("attr_"):]: _flag(row[c], False) for c in attr_cols}
                name = (row["image"] or "").strip()
                if not name:
                    raise ValueError("empty image column")
            except (ValueError, TypeError) as e:
                report.reject_malformed(src, str(e), "malformed row")
                continue
            records.append(_Record(root / name, pts, str(root / name), (row.get("group") or "").strip() or name,
                                   visible=visible, box=box, attributes=attributes,
                                   split=(row.get("split") or "").strip()))
    records = _select_split(records, split, str(path))
    return _build_samples(records, sch, policy, report, progress), report


def load_points_json(
    path: str | Path,
    images: str | Path | None = None,
    policy: Policy = "mask",
    progress: bool = True,
    scheme: str | Path | PointScheme | None = None,
    split: str | None = None,
    default_scheme: str | PointScheme | None = None,
) -> tuple[list[Sample], CleaningReport]:
    """Custom points as JSON (see the README): ``{"faces": [...]}`` or a bare list of faces.

    A face: ``image`` (relative to the JSON's folder or ``images``),
    ``points`` (one ``[x, y]`` or ``null`` per scheme point, in order), and
    optionally ``visible`` (one bool per point), ``box`` ``[x0, y0, x1, y1]``,
    ``split``, ``group`` and ``attributes`` (name -> bool). 0-based pixels.
    """
    path = Path(path)
    sch = custom_scheme(path, scheme, default_scheme)
    root = Path(images) if images is not None else path.parent
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    faces = data.get("faces") if isinstance(data, dict) else data
    if not isinstance(faces, list):
        raise DataError(f"{path}: expected a list of faces or {{\"faces\": [...]}}")
    report = CleaningReport(dataset=str(path), policy=policy)
    records: list[_Record] = []
    for i, face in enumerate(faces):
        src = f"{path}#{i}"
        try:
            name = str(face["image"])
            pts = np.array([[np.nan, np.nan] if p is None else [_json_num(p[0]), _json_num(p[1])]
                            for p in face["points"]], dtype=np.float64).reshape(-1, 2)
            vis = face.get("visible")
            visible = None if vis is None else np.array([_flag(v, True) for v in vis], dtype=bool)
            box = face.get("box")
            box = None if box is None else np.array([_json_num(v) for v in box], dtype=np.float64).reshape(4)
            attributes = {str(a): _flag(v, False) for a, v in (face.get("attributes") or {}).items()}
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            report.reject_malformed(src, f"malformed face ({type(e).__name__}: {e})", "malformed face")
            continue
        records.append(_Record(root / name, pts, str(root / name), str(face.get("group") or name),
                               visible=visible, box=box, attributes=attributes, split=str(face.get("split") or "")))
    records = _select_split(records, split, str(path))
    return _build_samples(records, sch, policy, report, progress), report


def _json_num(v: Any) -> float:
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{v!r} is not a number")
    return float(v)


@dataclass
class DatasetSpec:
    """Where a dataset is and how to read it; ``format`` is a key of ``DATASETS``.

    ``scheme`` converts the points on load (e.g. ibug68 data for a kaggle15
    model); for the custom formats (``points-csv``, ``points-json``) it is the
    file's own scheme, a built-in name or a YAML file. ``path`` may end in
    ``@SPLIT`` to read one split of a file that holds several
    (``AFLWinfo_release.mat@test``).
    """

    path: str
    format: str = "auto"
    images: str | None = None
    scheme: str | None = None
    convention: str = ""  # annotation convention of this source; models with per-convention offsets learn it


Loader = Callable[..., tuple[list[Sample], CleaningReport]]
DATASETS: dict[str, Loader] = {
    "youtube-csv": load_youtube_csv,
    "ibug-pts": load_pts_folder,
    "kaggle-csv": load_kaggle_csv,
    "aflw-sqlite": load_aflw_sqlite,
    "aflw19-mat": load_aflw19_mat,
    "wflw-txt": load_wflw_txt,
    "cofw-mat": load_cofw_mat,
    "points-csv": load_points_csv,
    "points-json": load_points_json,
}
OWN_SCHEME_FORMATS = frozenset({"points-csv", "points-json"})  # spec.scheme is the file's scheme, not a target


def detect_format(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir():
        return "ibug-pts"
    with open(p, "rb") as f:
        magic = f.read(16)
    if magic == b"SQLite format 3\x00":
        return "aflw-sqlite"
    suffix = p.suffix.lower()
    if suffix == ".csv":
        with open(p, encoding="utf-8", errors="replace") as f:
            header = f.readline()
        if "Image" in header.split(",")[-1] or "Image" in header:
            return "kaggle-csv"
        columns = [c.strip() for c in next(csv.reader([header]), [])]
        if "image" in columns and any(c.endswith("_x") for c in columns):
            return "points-csv"
        return "youtube-csv"
    if suffix == ".json":
        return "points-json"
    if suffix == ".txt":
        return "wflw-txt"
    if suffix == ".mat":
        names = mat_variables(p)
        if any(v[0] in names and v[1] in names for v in COFW_VARIABLES.values()):
            return "cofw-mat"
        if {"data", "mask_new", "nameList"} <= names:
            return "aflw19-mat"
        raise DataError(f"{p}: neither COFW (IsTr/phisTr, IsT/phisT) nor AFLW-19 (data, mask_new, nameList) "
                        f"variables; it has {sorted(names)[:10]}")
    raise DataError(f"cannot tell the format of {p}: give a folder of images + .pts, a CSV, a WFLW .txt, "
                    f"a COFW or AFLW-19 .mat, an AFLW .sqlite, or a points .json")


def split_dataset_path(path: str) -> tuple[str, str | None]:
    """``PATH@SPLIT`` -> (PATH, SPLIT); a path that exists as written is never split."""
    if "@" in path and not Path(path).exists():
        base, _, part = path.rpartition("@")
        if base and part and "/" not in part and "\\" not in part:
            return base, part
    return path, None


def load_dataset(
    spec: DatasetSpec | str,
    policy: Policy = "mask",
    progress: bool = True,
    default_scheme: str | PointScheme | None = None,
) -> tuple[list[Sample], CleaningReport]:
    """Load a dataset from a spec or a plain path (format detected), converting its scheme if asked.

    ``default_scheme`` reads custom points files that name no scheme (no
    ``spec.scheme``, no YAML beside them), e.g. in the scheme of the model
    being evaluated.
    """
    if isinstance(spec, str):
        spec = DatasetSpec(path=spec)
    path, part = split_dataset_path(spec.path)
    if not Path(path).exists():
        raise DataError(f"dataset path {path} does not exist")
    fmt = detect_format(path) if spec.format == "auto" else spec.format
    if fmt not in DATASETS:
        raise DataError(f"unknown dataset format {fmt!r}; known: {sorted(DATASETS)}")
    loader = DATASETS[fmt]
    kwargs: dict[str, Any] = {"policy": policy, "progress": progress}
    if spec.images is not None:
        kwargs["images"] = spec.images
    if part is not None:
        if "split" not in inspect.signature(loader).parameters:
            raise DataError(f"{spec.path}: {fmt} files have no splits to choose from")
        kwargs["split"] = part
    if fmt in OWN_SCHEME_FORMATS:
        kwargs.update(scheme=spec.scheme, default_scheme=default_scheme)
    samples, report = loader(path, **kwargs)
    if fmt not in OWN_SCHEME_FORMATS and spec.scheme and samples:
        target = load_scheme(spec.scheme)
        if samples[0].scheme != target.name:
            samples = [convert_sample(s, target) for s in samples]
    if spec.convention:
        for s in samples:
            s.convention = spec.convention
    return samples, report


def convert_sample(sample: Sample, scheme: str | PointScheme) -> Sample:
    """The sample in another scheme; a derived point is visible only if all its sources are."""
    target = load_scheme(scheme)
    pts, mask = convert_points(sample.points, sample.mask, sample.scheme, target)
    pts = pts.astype(np.float32)
    pts[~mask] = np.nan
    visible = None
    if sample.visible is not None:
        visible = convert_points(sample.points, sample.visible, sample.scheme, target)[1]
    landmark_box = sample.landmark_box
    if landmark_box is None and sample.mask.sum() >= 2:
        landmark_box = tight_box(sample.points, sample.mask)
    return Sample(sample.image, pts, mask, sample.source, target.name, sample.group, visible=visible, convention=sample.convention,
                  attributes=dict(sample.attributes), box=sample.box, split=sample.split, landmark_box=landmark_box)


def split_by_group(samples: list[Sample], val_fraction: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Hold out whole groups (people, source photos) so validation never sees training frames of the same face."""
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1")

    def bucket(group: str) -> float:
        h = hashlib.sha1(f"{seed}:{group}".encode()).hexdigest()
        return int(h[:8], 16) / 0xFFFFFFFF

    train = [s for s in samples if bucket(s.group or s.source) >= val_fraction]
    val = [s for s in samples if bucket(s.group or s.source) < val_fraction]
    if not train or not val:
        warnings.warn("group split left one side empty; falling back to splitting by file", stacklevel=2)
        val = samples[:: max(2, int(round(1 / val_fraction)))]
        ids = {id(s) for s in val}
        train = [s for s in samples if id(s) not in ids]
    return train, val
