"""Kaggle Facial Keypoints CSV: 30 coordinate columns (often empty) and ``Image``, 96x96 grey pixels inline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepoints.datasets.core import CleaningReport, DataError, Policy, Record, Sample, build_samples, parse_float
from facepoints.datasets.csvtext import dict_rows, read_header
from facepoints.datasets.registry import Format, LoadOptions, register
from facepoints.schemes import load_scheme

KAGGLE_COLUMNS = [f"{name}_{axis}" for name in load_scheme("kaggle15").points for axis in ("x", "y")]


def _grey_image(text: str | None) -> np.ndarray:
    pixels = np.array(text.split(), dtype=np.float64)  # type: ignore[union-attr]
    side = int(round(np.sqrt(len(pixels))))
    if side * side != len(pixels) or side == 0 or not np.isfinite(pixels).all():
        raise ValueError(f"{len(pixels)} pixel values do not make a square image")
    grey = pixels.clip(0, 255).astype(np.uint8).reshape(side, side)
    return np.repeat(grey[..., None], 3, 2)


def load(path: Path, opts: LoadOptions) -> tuple[list[Sample], CleaningReport]:
    scheme = load_scheme("kaggle15")
    report = CleaningReport(dataset=str(path), policy=opts.policy)
    fields = read_header(path)
    if "Image" not in fields:
        raise DataError(f"{path}: no 'Image' column; not a Kaggle keypoints CSV")
    columns = [c for c in KAGGLE_COLUMNS if c in fields]
    records: list[Record] = []
    for lineno, row in dict_rows(path, report, fields):
        src = f"{path}:{lineno}"
        try:
            image = _grey_image(row["Image"])
        except (ValueError, AttributeError) as e:
            report.reject_unreadable(src, f"bad Image column ({e})", "unreadable image")
            continue
        vals = np.array([parse_float(row.get(c) or "") if c in columns else np.nan for c in KAGGLE_COLUMNS])
        records.append(Record(None, vals.reshape(-1, 2), src, src, image=image))
    return build_samples(records, scheme, opts.policy, report, opts.progress), report


def load_kaggle_csv(path: str | Path, policy: Policy = "mask", progress: bool = True
                    ) -> tuple[list[Sample], CleaningReport]:
    return load(Path(path), LoadOptions(policy=policy, progress=progress))


def _sniff(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return "Image" in header


register(Format("kaggle-csv", load, sniff=_sniff, suffixes=(".csv",),
                what="a Kaggle keypoints CSV (30 coordinate columns and Image)"))
