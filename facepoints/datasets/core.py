"""What every format shares: the face record (``Sample``), cleaning and its report, and the image reader.

Loaders turn files into ``Record``s; ``build_samples`` decodes their images,
masks bad points and counts everything it masks or drops in a
``CleaningReport``, so bad records are never silently lost. Coordinates follow
``facepoints.geometry`` (0-based pixels, pixel centres at integers). Nothing
here imports torch.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from facepoints.errors import ImageReadError, UserError
from facepoints.geometry import tight_box
from facepoints.images import pil_to_rgb
from facepoints.schemes import PointScheme, convert_points, load_scheme

Policy = Literal["mask", "drop"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DataError(UserError):
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


_REPORT_LISTS = ("unreadable", "missing_points", "out_of_range", "bad_records", "dropped", "occluded_points")


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
        for name in ("records", "kept", *_REPORT_LISTS):
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
        for title, items in (("unreadable", self.unreadable), ("malformed", self.bad_records),
                             ("dropped", self.dropped)):
            for f, why in items[:10]:
                lines.append(f"    {title}: {f}: {why.removeprefix(f'{f}: ')}")  # readers' errors may name f too
            if len(items) > 10:
                lines.append(f"    ... and {len(items) - 10} more {title}")
        return "\n".join(lines)


# ---------------------------------------------------------------- images


def read_rgb(source: str | Path | Image.Image, exif: bool = True) -> np.ndarray:
    """Decode an image fully (truncated files raise) as RGB uint8 (H, W, 3).

    ``exif=True`` turns a photo upright as its owner sees it; datasets pass
    ``False`` because their annotations are in stored pixel coordinates.
    16-bit images are scaled by 1/257 (65535 -> 255), transparent pixels are
    composited on white, greyscale is repeated to 3 channels. PIL rather than
    OpenCV: OpenCV returns a half-grey image for a truncated JPEG with only a
    warning, which would poison training data.
    """
    if isinstance(source, Image.Image):
        return _upright_rgb(source, exif, "image")
    p = Path(source)
    try:
        with Image.open(p) as im:
            im.load()
            return _upright_rgb(im, exif, str(p))
    except FileNotFoundError:
        raise ImageReadError(f"cannot read image {p}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"cannot read image {p}: it is a folder") from None
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - PIL raises many types for corrupt or foreign data
        raise ImageReadError(f"cannot read image {p}: {type(e).__name__}: {e}") from None


def _upright_rgb(im: Image.Image, exif: bool, name: str) -> np.ndarray:
    if exif:
        try:
            im = ImageOps.exif_transpose(im) or im
        except Exception as e:  # noqa: BLE001 - broken EXIF: the pixels are still fine
            warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({e})", stacklevel=3)
    return pil_to_rgb(im)


def read_image(path: str | Path) -> np.ndarray:
    """A dataset image as stored (no EXIF rotation: annotations are in stored pixels); ``DataError`` if undecodable."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return read_rgb(path, exif=False)
    except ImageReadError as e:
        raise DataError(str(e)) from None


# ---------------------------------------------------------------- records and cleaning


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
class Record:
    """One face as a loader read it, before its image is decoded and its points cleaned."""

    image_path: Path | None
    points: np.ndarray
    source: str
    group: str
    image: np.ndarray | None = None  # for formats that store pixels inline
    visible: np.ndarray | None = None
    box: np.ndarray | None = None
    attributes: dict[str, bool] = field(default_factory=dict)
    split: str = ""


def select_split(records: list[Record], split: str | None, where: str) -> list[Record]:
    """The records of one split; an unknown split is an error, not an empty dataset."""
    if split is None:
        return records
    chosen = [r for r in records if r.split == split]
    if not chosen:
        have = sorted({r.split for r in records if r.split})
        raise DataError(f"{where} has no {split!r} split" + (f"; it has {have}" if have else "; it has no splits"))
    return chosen


def _shape_problem(rec: Record, k: int) -> tuple[str, str] | None:
    if rec.points.shape != (k, 2):
        return f"expected {k} points, got {rec.points.shape[0]}", "wrong number of points"
    if rec.visible is not None and np.shape(rec.visible) != (k,):
        return f"expected {k} visibility flags, got {np.size(rec.visible)}", "wrong number of visibility flags"
    return None


def _clean_sample(rec: Record, image: np.ndarray, scheme: PointScheme, policy: Policy,
                  report: CleaningReport) -> Sample | None:
    pts, mask, n_missing, n_out = clean_points(rec.points, (image.shape[1], image.shape[0]))
    if n_missing:
        report.missing_points.append((rec.source, n_missing))
    if n_out:
        report.out_of_range.append((rec.source, n_out))
    if mask.sum() < 2:
        report.dropped.append((rec.source, "fewer than two valid points"))
        return None
    if policy == "drop" and (n_missing or n_out):
        report.dropped.append((rec.source, "missing or out-of-range points"))
        return None
    visible = None if rec.visible is None else np.asarray(rec.visible, dtype=bool).copy()
    if visible is not None and (mask & ~visible).any():
        report.occluded_points.append((rec.source, int((mask & ~visible).sum())))
    box = None if rec.box is None else np.asarray(rec.box, dtype=np.float32).reshape(4)
    if box is not None and not np.isfinite(box).all():
        box = None
    return Sample(image, pts, mask, rec.source, scheme.name, rec.group, visible=visible,
                  attributes=dict(rec.attributes), box=box, split=rec.split)


def build_samples(
    records: list[Record], scheme: PointScheme, policy: Policy, report: CleaningReport, progress: bool
) -> list[Sample]:
    """Decode, check and clean every record; whatever is masked or dropped is counted in ``report``."""
    if policy not in ("mask", "drop"):
        raise ValueError(f"policy must be 'mask' or 'drop', not {policy!r}")
    samples: list[Sample] = []
    last: tuple[Path | None, np.ndarray | None] = (None, None)  # formats with several faces per photo decode it once
    for rec in tqdm(records, desc=f"reading {report.dataset}", disable=not progress, leave=False):
        report.records += 1
        problem = _shape_problem(rec, scheme.num_points)
        if problem is not None:
            report.bad_records.append((rec.source, problem[0]))
            report.dropped.append((rec.source, problem[1]))
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
        sample = _clean_sample(rec, image, scheme, policy, report)
        if sample is not None:
            samples.append(sample)
    report.kept = len(samples)
    return samples


# ---------------------------------------------------------------- field parsing shared by the text formats


def group_of(name: str) -> str:
    """Person/recording id from a frame name like ``Luis_Fonsi_21.jpg`` -> ``Luis_Fonsi``."""
    stem = Path(name).stem
    return re.sub(r"[_-]?\d+$", "", stem) or stem


def parse_float(s: str) -> float:
    """A coordinate field; empty means not annotated (NaN)."""
    s = s.strip()
    return float(s) if s else float("nan")


def parse_flag(text: Any, default: bool) -> bool:
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


def first_dir(candidates: list[Path], fallback: Path) -> Path:
    return next((c for c in candidates if c.is_dir()), fallback)


# ---------------------------------------------------------------- whole-dataset operations


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
    return Sample(sample.image, pts, mask, sample.source, target.name, sample.group, visible=visible,
                  convention=sample.convention, attributes=dict(sample.attributes), box=sample.box,
                  split=sample.split, landmark_box=landmark_box)


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
