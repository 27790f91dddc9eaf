"""iBUG ``.pts`` files beside their images (300-W, HELEN, AFW, LFPW, iBUG); the files are 1-based."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from facepoints.datasets.core import IMAGE_SUFFIXES, CleaningReport, DataError, Policy, Record, Sample, build_samples
from facepoints.datasets.registry import Format, LoadOptions, register
from facepoints.schemes import load_scheme


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


def _image_beside(pts_file: Path) -> Path | None:
    return next((pts_file.with_suffix(s) for s in IMAGE_SUFFIXES + tuple(x.upper() for x in IMAGE_SUFFIXES)
                 if pts_file.with_suffix(s).exists()), None)


def _photo_group(image: Path) -> str:
    """The photo's path without suffix, relative to the working directory as the split by group has always hashed it.

    (Relative to the dataset folder would be independent of where a run starts,
    but would move faces between training and validation of existing runs.)
    """
    try:
        return os.path.relpath(image.with_suffix(""))
    except ValueError:  # another drive (Windows)
        return str(image.with_suffix(""))


def load(path: Path, opts: LoadOptions, scheme: str = "ibug68") -> tuple[list[Sample], CleaningReport]:
    """A folder (searched recursively) of images with iBUG ``.pts`` files beside them."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    sch = load_scheme(scheme)
    report = CleaningReport(dataset=str(root), policy=opts.policy)
    records: list[Record] = []
    pts_files = sorted(root.rglob("*.pts"))
    if not pts_files:
        raise DataError(f"{root} holds no .pts files")
    for pts_file in pts_files:
        image = _image_beside(pts_file)
        if image is None:
            report.reject_unreadable(str(pts_file), "no image beside the .pts file", "image missing")
            continue
        try:
            pts = read_pts(pts_file)
        except (DataError, OSError) as e:
            report.reject_malformed(str(pts_file), str(e), "malformed .pts", face=str(image))
            continue
        records.append(Record(image, pts, str(image), _photo_group(image)))
    return build_samples(records, sch, opts.policy, report, opts.progress), report


def load_pts_folder(
    path: str | Path, policy: Policy = "mask", progress: bool = True, scheme: str = "ibug68"
) -> tuple[list[Sample], CleaningReport]:
    """A folder of images with ``.pts`` files beside them, read in ``scheme``."""
    return load(Path(path), LoadOptions(policy=policy, progress=progress), scheme=scheme)


register(Format("ibug-pts", load, sniff=Path.is_dir, what="a folder of images with iBUG .pts files beside them"))
