"""WFLW ``list_98pt_rect_attr_{train,test}.txt``: 98 points, a box and six attribute flags per line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepoints.datasets.core import CleaningReport, Policy, Record, Sample, build_samples, first_dir
from facepoints.datasets.registry import Format, LoadOptions, register
from facepoints.schemes import load_scheme

WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "make-up", "occlusion", "blur")


def load(path: Path, opts: LoadOptions) -> tuple[list[Sample], CleaningReport]:
    """WFLW ``list_98pt_rect_attr_{train,test}.txt``: per line 196 coordinates (x0 y0 ... x97 y97),
    the box x_min y_min x_max y_max, six 0/1 flags (pose, expression, illumination, make-up,
    occlusion, blur) and the image path under ``WFLW_images/``.

    The image folder defaults to the nearest ``WFLW_images`` beside the file
    or up to three folders above it (the release's layout). The split is read
    from the file name; faces are grouped by photo.
    """
    k = 98
    images = opts.images
    if images is None:
        images = first_dir([p / "WFLW_images" for p in list(path.parents)[:4]], path.parent)
    images = Path(images)
    scheme = load_scheme("wflw98")
    part = "train" if "train" in path.stem else "test" if "test" in path.stem else ""
    report = CleaningReport(dataset=str(path), policy=opts.policy)
    records: list[Record] = []
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
            records.append(Record(images / name, vals[:2 * k].reshape(k, 2), f"{images / name}#{lineno}", name,
                                   box=vals[2 * k:], attributes=dict(zip(WFLW_ATTRIBUTES, map(bool, flags))),
                                   split=part))
    return build_samples(records, scheme, opts.policy, report, opts.progress), report


def load_wflw_txt(path: str | Path, images: str | Path | None = None, policy: Policy = "mask", progress: bool = True
                  ) -> tuple[list[Sample], CleaningReport]:
    return load(Path(path), LoadOptions(images=None if images is None else Path(images), policy=policy,
                                        progress=progress))


register(Format("wflw-txt", load, sniff=lambda p: True, suffixes=(".txt",),
                what="a WFLW list_98pt_rect_attr_*.txt"))
