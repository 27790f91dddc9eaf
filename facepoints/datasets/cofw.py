"""COFW colour ``.mat`` files: 29 points with occlusion flags, images stored inside the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepoints.datasets.core import CleaningReport, DataError, Policy, Record, Sample, build_samples, select_split
from facepoints.datasets.matlab import mat_image, mat_variables, read_mat
from facepoints.datasets.registry import Format, LoadOptions, register
from facepoints.schemes import load_scheme

COFW_VARIABLES = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}


def load(path: Path, opts: LoadOptions) -> tuple[list[Sample], CleaningReport]:
    """COFW ``COFW_train_color.mat`` / ``COFW_test_color.mat``: faces with 29 points and occlusion flags.

    ``IsTr``/``IsT`` are cell arrays of images, ``phisTr``/``phisT`` rows of
    29 x, 29 y and 29 flags (1 = occluded), ``bboxesTr``/``bboxesT`` rows of
    x, y, w, h. The coordinates are MATLAB's (1-based) and are shifted on read.
    Occluded points keep their coordinates and are marked not visible.
    """
    names = mat_variables(path)
    present = {s: v for s, v in COFW_VARIABLES.items() if v[0] in names and v[1] in names}
    if not present:
        raise DataError(f"{path}: no IsTr/phisTr or IsT/phisT variables; not a COFW .mat file")
    scheme = load_scheme("cofw29")
    k = scheme.num_points
    report = CleaningReport(dataset=str(path), policy=opts.policy)
    records: list[Record] = []
    for part, (iv, pv, bv) in present.items():
        mat = read_mat(path, (iv, pv, bv))
        images = np.asarray(mat[iv], dtype=object).reshape(-1)
        phis = np.asarray(mat[pv], dtype=np.float64)
        if phis.ndim != 2 or phis.shape[1] != 3 * k or len(phis) != len(images):
            raise DataError(f"{path}: {pv} should be {len(images)} x {3 * k} (x, y, occlusion), is {phis.shape}")
        boxes = np.asarray(mat[bv], dtype=np.float64) if bv in mat else None
        if boxes is not None and boxes.shape != (len(images), 4):
            report.bad_records.append((f"{path}:{bv}",
                                       f"shape {boxes.shape}, expected {(len(images), 4)}; boxes ignored"))
            boxes = None
        for i in range(len(images)):
            src = f"{path}#{iv}[{i + 1}]"
            try:
                image = mat_image(images[i])
            except ValueError as e:
                report.reject_unreadable(src, str(e), "unreadable image")
                continue
            pts = np.stack([phis[i, :k], phis[i, k:2 * k]], axis=1) - 1.0
            box = None
            if boxes is not None:
                x, y, w, h = boxes[i]
                box = np.array([x - 1.0, y - 1.0, x - 1.0 + w, y - 1.0 + h])
            records.append(Record(None, pts, src, src, image=image, visible=phis[i, 2 * k:] < 0.5,
                                   box=box, split=part))
    records = select_split(records, opts.split, str(path))
    return build_samples(records, scheme, opts.policy, report, opts.progress), report


def load_cofw_mat(path: str | Path, policy: Policy = "mask", progress: bool = True, split: str | None = None
                  ) -> tuple[list[Sample], CleaningReport]:
    return load(Path(path), LoadOptions(policy=policy, progress=progress, split=split))


def _sniff(path: Path) -> bool:
    names = mat_variables(path)
    return any(v[0] in names and v[1] in names for v in COFW_VARIABLES.values())


register(Format("cofw-mat", load, sniff=_sniff, suffixes=(".mat",), splits=True,
                what="COFW (.mat with IsTr/phisTr or IsT/phisT)", image_folder=False))
