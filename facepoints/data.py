"""Files -> samples: loaders for the public landmark formats, and cleaning.

Every loader returns the same ``Sample`` type and a ``CleaningReport``; bad
records are masked or dropped as the user chooses and always reported, never
silently lost. Coordinates follow ``facepoints.geometry`` (0-based pixels,
pixel centres at integers); formats with 1-based files are shifted on read.
"""

from __future__ import annotations

import csv
import hashlib
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

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

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


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

    def merge(self, other: CleaningReport) -> CleaningReport:
        out = CleaningReport(dataset=f"{self.dataset}+{other.dataset}".strip("+"), policy=self.policy)
        for name in ("records", "kept"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        for name in ("unreadable", "missing_points", "out_of_range", "bad_records", "dropped"):
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


def _build_samples(
    records: list[_Record], scheme: PointScheme, policy: Policy, report: CleaningReport, progress: bool
) -> list[Sample]:
    if policy not in ("mask", "drop"):
        raise ValueError(f"policy must be 'mask' or 'drop', not {policy!r}")
    samples: list[Sample] = []
    for rec in tqdm(records, desc=f"reading {report.dataset}", disable=not progress, leave=False):
        report.records += 1
        if rec.points.shape != (scheme.num_points, 2):
            report.bad_records.append((rec.source, f"expected {scheme.num_points} points, got {rec.points.shape[0]}"))
            report.dropped.append((rec.source, "wrong number of points"))
            continue
        if rec.image is not None:
            image = rec.image
        else:
            try:
                image = read_image(rec.image_path)
            except (DataError, OSError) as e:
                report.unreadable.append((rec.source, str(e)))
                report.dropped.append((rec.source, "unreadable image"))
                continue
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
        samples.append(Sample(image, pts, mask, rec.source, scheme.name, rec.group))
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
                report.records += 1
                report.bad_records.append((f"{path}:{lineno}", f"non-numeric coordinate ({e})"))
                report.dropped.append((f"{path}:{lineno}", "malformed row"))
                continue
            if len(vals) % 2:
                report.records += 1
                report.bad_records.append((f"{path}:{lineno}", f"odd number of coordinates ({len(vals)})"))
                report.dropped.append((f"{path}:{lineno}", "malformed row"))
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
            report.records += 1
            report.unreadable.append((str(pts_file), "no image beside the .pts file"))
            report.dropped.append((str(pts_file), "image missing"))
            continue
        try:
            pts = read_pts(pts_file)
        except (DataError, OSError) as e:
            report.records += 1
            report.bad_records.append((str(pts_file), str(e)))
            report.dropped.append((str(image), "malformed .pts"))
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
                report.records += 1
                report.unreadable.append((src, f"bad Image column ({e})"))
                report.dropped.append((src, "unreadable image"))
                continue
            vals = np.array([_float(row.get(c) or "") if c in columns else np.nan for c in KAGGLE_COLUMNS])
            records.append(_Record(None, vals.reshape(-1, 2), src, src, image=np.repeat(grey[..., None], 3, 2)))
    return _build_samples(records, scheme, policy, report, progress), report


@dataclass
class DatasetSpec:
    """Where a dataset is and how to read it; ``format`` is a key of ``DATASETS``.

    ``scheme`` converts the points on load (e.g. ibug68 data for a kaggle15 model).
    """

    path: str
    format: str = "auto"
    images: str | None = None
    scheme: str | None = None


Loader = Callable[..., tuple[list[Sample], CleaningReport]]
DATASETS: dict[str, Loader] = {
    "youtube-csv": load_youtube_csv,
    "ibug-pts": load_pts_folder,
    "kaggle-csv": load_kaggle_csv,
}


def detect_format(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir():
        return "ibug-pts"
    if p.suffix.lower() == ".csv":
        with open(p, encoding="utf-8", errors="replace") as f:
            header = f.readline()
        return "kaggle-csv" if "Image" in header.split(",")[-1] or "Image" in header else "youtube-csv"
    raise DataError(f"cannot tell the format of {p}: give a folder of images + .pts, or a CSV")


def load_dataset(spec: DatasetSpec | str, policy: Policy = "mask", progress: bool = True) -> tuple[list[Sample], CleaningReport]:
    """Load a dataset from a spec or a plain path (format detected), converting its scheme if asked."""
    if isinstance(spec, str):
        spec = DatasetSpec(path=spec)
    if not Path(spec.path).exists():
        raise DataError(f"dataset path {spec.path} does not exist")
    fmt = detect_format(spec.path) if spec.format == "auto" else spec.format
    if fmt not in DATASETS:
        raise DataError(f"unknown dataset format {fmt!r}; known: {sorted(DATASETS)}")
    kwargs = {"policy": policy, "progress": progress}
    if spec.images is not None:
        kwargs["images"] = spec.images
    samples, report = DATASETS[fmt](spec.path, **kwargs)
    if spec.scheme and samples and samples[0].scheme != spec.scheme:
        samples = [convert_sample(s, spec.scheme) for s in samples]
    return samples, report


def convert_sample(sample: Sample, scheme: str) -> Sample:
    pts, mask = convert_points(sample.points, sample.mask, sample.scheme, scheme)
    pts = pts.astype(np.float32)
    pts[~mask] = np.nan
    return Sample(sample.image, pts, mask, sample.source, load_scheme(scheme).name, sample.group)


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
