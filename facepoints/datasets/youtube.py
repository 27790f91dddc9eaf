"""Udacity / YouTube-Faces keypoints CSV: ``file, x0, y0, ..., x67, y67`` (0-based pixels) and an image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepoints.datasets.core import (
    CleaningReport,
    DataError,
    Policy,
    Record,
    Sample,
    build_samples,
    group_of,
    parse_float,
)
from facepoints.datasets.csvtext import csv_rows, read_header
from facepoints.datasets.registry import Format, LoadOptions, register
from facepoints.schemes import load_scheme


def _image_folder(path: Path, images: Path | None) -> Path:
    """The CSV's name before ``_frames_keypoints`` (``training_frames_keypoints.csv`` -> ``training/``), else its
    folder."""
    if images is not None:
        return Path(images)
    stem = path.stem.replace("_frames_keypoints", "")
    return path.parent / stem if (path.parent / stem).is_dir() else path.parent


def load(path: Path, opts: LoadOptions) -> tuple[list[Sample], CleaningReport]:
    images = _image_folder(path, opts.images)
    scheme = load_scheme("ibug68")
    report = CleaningReport(dataset=str(path), policy=opts.policy)
    header = read_header(path)
    if len(header) < 3:
        raise DataError(f"{path} does not look like a keypoints CSV (header {header[:3]})")
    records: list[Record] = []
    for lineno, row in csv_rows(path, report):
        name = row[0]
        try:
            vals = np.array([parse_float(v) for v in row[1:]], dtype=np.float64)
        except ValueError as e:
            report.reject_malformed(f"{path}:{lineno}", f"non-numeric coordinate ({e})", "malformed row")
            continue
        if len(vals) % 2:
            report.reject_malformed(f"{path}:{lineno}", f"odd number of coordinates ({len(vals)})", "malformed row")
            continue
        records.append(Record(images / name, vals.reshape(-1, 2), str(images / name), group_of(name)))
    return build_samples(records, scheme, opts.policy, report, opts.progress), report


def load_youtube_csv(
    path: str | Path, images: str | Path | None = None, policy: Policy = "mask", progress: bool = True
) -> tuple[list[Sample], CleaningReport]:
    """The YouTube-Faces CSV at ``path``; images in ``images`` or the folder named after the CSV."""
    return load(Path(path), LoadOptions(images=None if images is None else Path(images), policy=policy,
                                        progress=progress))


register(Format("youtube-csv", load, sniff=lambda p: True, suffixes=(".csv",), fallback=True,
                what="a keypoints CSV (file, x0, y0, ..., x67, y67)"))
