"""Your own points, for any scheme: ``points-csv`` (one face per row) and ``points-json`` (a list of faces).

The scheme is the file's own (``DatasetSpec.scheme``, ``<file stem>.yaml``
beside it, or the caller's default), not a conversion target. 0-based pixels.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from facepoints.datasets.core import (
    CleaningReport,
    DataError,
    Policy,
    Record,
    Sample,
    build_samples,
    parse_flag,
    parse_float,
    select_split,
)
from facepoints.datasets.csvtext import dict_rows, read_header
from facepoints.datasets.registry import Format, LoadOptions, register
from facepoints.schemes import PointScheme, load_scheme

BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")


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


def _csv_columns(path: Path, sch: PointScheme) -> list[str]:
    """The header's column names; refuses a file without ``image`` or the scheme's coordinate columns."""
    fields = [c.strip() for c in read_header(path)]
    missing = [c for p in sch.points for c in (f"{p}_x", f"{p}_y") if c not in fields]
    if "image" not in fields or missing:
        what = ["image"] if "image" not in fields else []
        raise DataError(f"{path}: no column(s) {(what + missing)[:6]}{' ...' if len(missing) > 6 else ''} "
                        f"for scheme {sch.name!r} ({sch.num_points} points); is it the right scheme?")
    return fields


def _csv_record(row: dict[str, str | None], sch: PointScheme, fields: list[str], root: Path) -> Record:
    xy = [(f"{p}_x", f"{p}_y") for p in sch.points]
    vis_cols = [f"{p}_visible" for p in sch.points]
    pts = np.array([[parse_float(row[cx] or ""), parse_float(row[cy] or "")] for cx, cy in xy])
    visible = np.array([parse_flag(row.get(c), True) for c in vis_cols]) if any(c in fields for c in vis_cols) else None
    box = np.array([parse_float(row[c] or "") for c in BOX_COLUMNS]) if all(c in fields for c in BOX_COLUMNS) else None
    attributes = {c[len("attr_"):]: parse_flag(row[c], False) for c in fields if c.startswith("attr_")}
    name = (row["image"] or "").strip()
    if not name:
        raise ValueError("empty image column")
    return Record(root / name, pts, str(root / name), (row.get("group") or "").strip() or name,
                  visible=visible, box=box, attributes=attributes, split=(row.get("split") or "").strip())


def load_csv(path: Path, opts: LoadOptions) -> tuple[list[Sample], CleaningReport]:
    """Custom points as CSV, one face per row (see docs/datasets.md).

    Columns: ``image`` (path relative to the CSV's folder or ``images``),
    ``<point>_x`` and ``<point>_y`` for every point name of the scheme (empty
    = not annotated), and optionally ``<point>_visible`` (0 = occluded),
    ``box_x0, box_y0, box_x1, box_y1``, ``split``, ``group`` and
    ``attr_<name>`` 0/1 columns (evaluated as subsets).
    """
    sch = custom_scheme(path, opts.scheme, opts.default_scheme)
    root = opts.images if opts.images is not None else path.parent
    report = CleaningReport(dataset=str(path), policy=opts.policy)
    fields = _csv_columns(path, sch)
    records: list[Record] = []
    for lineno, row in dict_rows(path, report, fields):
        try:
            records.append(_csv_record(row, sch, fields, root))
        except (ValueError, TypeError) as e:
            report.reject_malformed(f"{path}:{lineno}", str(e), "malformed row")
    records = select_split(records, opts.split, str(path))
    return build_samples(records, sch, opts.policy, report, opts.progress), report


def _json_num(v: Any) -> float:
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{v!r} is not a number")
    return float(v)


def _json_record(face: Any, root: Path) -> Record:
    name = str(face["image"])
    pts = np.array([[np.nan, np.nan] if p is None else [_json_num(p[0]), _json_num(p[1])]
                    for p in face["points"]], dtype=np.float64).reshape(-1, 2)
    vis = face.get("visible")
    visible = None if vis is None else np.array([parse_flag(v, True) for v in vis], dtype=bool)
    box = face.get("box")
    box = None if box is None else np.array([_json_num(v) for v in box], dtype=np.float64).reshape(4)
    attributes = {str(a): parse_flag(v, False) for a, v in (face.get("attributes") or {}).items()}
    return Record(root / name, pts, str(root / name), str(face.get("group") or name),
                  visible=visible, box=box, attributes=attributes, split=str(face.get("split") or ""))


def load_json(path: Path, opts: LoadOptions) -> tuple[list[Sample], CleaningReport]:
    """Custom points as JSON: ``{"faces": [...]}`` or a bare list of faces.

    A face: ``image`` (relative to the JSON's folder or ``images``),
    ``points`` (one ``[x, y]`` or ``null`` per scheme point, in order), and
    optionally ``visible`` (one bool per point), ``box`` ``[x0, y0, x1, y1]``,
    ``split``, ``group`` and ``attributes`` (name -> bool).
    """
    sch = custom_scheme(path, opts.scheme, opts.default_scheme)
    root = opts.images if opts.images is not None else path.parent
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    faces = data.get("faces") if isinstance(data, dict) else data
    if not isinstance(faces, list):
        raise DataError(f"{path}: expected a list of faces or {{\"faces\": [...]}}")
    report = CleaningReport(dataset=str(path), policy=opts.policy)
    records: list[Record] = []
    for i, face in enumerate(faces):
        try:
            records.append(_json_record(face, root))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            report.reject_malformed(f"{path}#{i}", f"malformed face ({type(e).__name__}: {e})", "malformed face")
    records = select_split(records, opts.split, str(path))
    return build_samples(records, sch, opts.policy, report, opts.progress), report


def _options(images: str | Path | None, policy: Policy, progress: bool, scheme: str | Path | PointScheme | None,
             split: str | None, default_scheme: str | PointScheme | None) -> LoadOptions:
    return LoadOptions(images=None if images is None else Path(images), policy=policy, progress=progress,
                       split=split, scheme=scheme, default_scheme=default_scheme)


def load_points_csv(path: str | Path, images: str | Path | None = None, policy: Policy = "mask",
                    progress: bool = True, scheme: str | Path | PointScheme | None = None, split: str | None = None,
                    default_scheme: str | PointScheme | None = None) -> tuple[list[Sample], CleaningReport]:
    return load_csv(Path(path), _options(images, policy, progress, scheme, split, default_scheme))


def load_points_json(path: str | Path, images: str | Path | None = None, policy: Policy = "mask",
                     progress: bool = True, scheme: str | Path | PointScheme | None = None, split: str | None = None,
                     default_scheme: str | PointScheme | None = None) -> tuple[list[Sample], CleaningReport]:
    return load_json(Path(path), _options(images, policy, progress, scheme, split, default_scheme))


def _is_points_csv(path: Path) -> bool:
    """An ``image`` column and ``<point>_x`` columns (a header with ``Image`` is Kaggle's)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    columns = [c.strip() for c in next(csv.reader([header]), [])]
    return "image" in columns and any(c.endswith("_x") for c in columns) and "Image" not in header


register(Format("points-csv", load_csv, sniff=_is_points_csv, suffixes=(".csv",), splits=True, own_scheme=True,
                what="a points CSV (image and <point>_x, <point>_y columns)"))
register(Format("points-json", load_json, sniff=lambda p: True, suffixes=(".json",), splits=True, own_scheme=True,
                what="a points JSON (a list of faces with image and points)"))
