"""The format registry: each format module registers one loader (one signature) and its own sniffing test.

``load_dataset`` reads any registered format from a ``DatasetSpec`` or a plain
path: it finds the format by asking each format whether a file is its own
(``detect_format``), picks a split with ``PATH@SPLIT``, and converts the
points to another scheme if the spec asks. A new format is one module that
calls ``register`` and one import line in ``facepoints/datasets/__init__.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facepoints.config import path_field
from facepoints.datasets.core import CleaningReport, DataError, Policy, Sample, convert_sample
from facepoints.schemes import PointScheme, load_scheme


@dataclass
class LoadOptions:
    """Everything a loader may be asked besides the path; formats ignore what they have no use for."""

    images: Path | None = None  # image folder, when not the format's default place
    policy: Policy = "mask"
    progress: bool = True
    split: str | None = None  # one split of a file that holds several
    scheme: str | Path | PointScheme | None = None  # own-scheme formats: the file's scheme
    default_scheme: str | PointScheme | None = None  # own-scheme formats: used when the file names none


Loader = Callable[[Path, LoadOptions], tuple[list[Sample], CleaningReport]]


@dataclass(frozen=True)
class Format:
    """A dataset format: its loader and how to recognise its files."""

    name: str  # the ``format:`` key of configs
    load: Loader
    sniff: Callable[[Path], bool]  # is this existing path a file (or folder) of this format?
    what: str  # what it looks like, for the message when no format recognises a file
    suffixes: tuple[str, ...] = ()  # sniff only files with these suffixes; () = any path
    fallback: bool = False  # sniffed after every other format of its suffixes
    splits: bool = False  # its files hold several splits, chosen with PATH@SPLIT
    own_scheme: bool = False  # DatasetSpec.scheme is the file's own scheme, not a conversion target


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    if fmt.name in FORMATS:
        raise ValueError(f"dataset format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise DataError(f"unknown dataset format {name!r}; known: {sorted(FORMATS)}")
    return FORMATS[name]


def detect_format(path: str | Path) -> str:
    """The name of the registered format that recognises ``path``."""
    p = Path(path)
    suffix = "" if p.is_dir() else p.suffix.lower()
    candidates = [f for f in FORMATS.values() if not f.suffixes or suffix in f.suffixes]
    for fmt in sorted(candidates, key=lambda f: f.fallback):
        if fmt.sniff(p):
            return fmt.name
    claimed = [f.what for f in candidates if f.suffixes]
    if claimed:
        raise DataError(f"{p}: neither {' nor '.join(claimed)}; give format: explicitly if it is one of them")
    known = "; ".join(f.what for f in FORMATS.values())
    raise DataError(f"cannot tell the format of {p}: give one of: {known}")


@dataclass
class DatasetSpec:
    """Where a dataset is and how to read it; ``format`` is a key of ``FORMATS`` or ``auto``.

    ``scheme`` converts the points on load (e.g. ibug68 data for a kaggle15
    model); for the custom formats (``points-csv``, ``points-json``) it is the
    file's own scheme, a built-in name or a YAML file. ``path`` may end in
    ``@SPLIT`` to read one split of a file that holds several
    (``AFLWinfo_release.mat@test``).
    """

    path: str = path_field(dataclasses.MISSING)
    format: str = "auto"
    images: str | None = path_field(None)
    scheme: str | None = path_field(None, maybe_name=True)
    convention: str = ""  # annotation convention of this source; models with per-convention offsets learn it


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
    fmt = get_format(detect_format(path) if spec.format == "auto" else spec.format)
    if part is not None and not fmt.splits:
        raise DataError(f"{spec.path}: {fmt.name} files have no splits to choose from")
    opts = LoadOptions(images=None if spec.images is None else Path(spec.images), policy=policy, progress=progress,
                       split=part, scheme=spec.scheme if fmt.own_scheme else None, default_scheme=default_scheme)
    samples, report = fmt.load(Path(path), opts)
    if not fmt.own_scheme and spec.scheme and samples:
        target = load_scheme(spec.scheme)
        if samples[0].scheme != target.name:
            samples = [convert_sample(s, target) for s in samples]
    if spec.convention:
        for s in samples:
            s.convention = spec.convention
    return samples, report
