"""WFLW list_98pt_rect_attr_*.txt: points, boxes, attributes, conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepoints.datasets import (
    DatasetSpec,
    detect_format,
    load_dataset,
    load_wflw_txt,
)
from facepoints.evaluate import attribute_subsets
from facepoints.schemes import load_scheme
from tests.datasets.builders import wflw_files


def test_wflw_txt_points_boxes_attributes(tmp_path: Path) -> None:
    path, pts = wflw_files(tmp_path)
    assert detect_format(path) == "wflw-txt"
    samples, report = load_dataset(str(path), progress=False)
    assert len(samples) == 3 and len(report.bad_records) == 1 and "4" in report.bad_records[0][0]
    for s, p in zip(samples, pts):
        np.testing.assert_allclose(s.points, p, atol=1e-4)
        assert s.scheme == "wflw98" and s.split == "test" and s.visible is None
    np.testing.assert_array_equal(samples[0].box, [3, 4, 70, 58])
    assert samples[0].attributes == {"pose": True, "expression": False, "illumination": False, "make-up": False,
                                     "occlusion": True, "blur": False}
    assert samples[0].group == samples[1].group != samples[2].group
    assert samples[0].image.shape == (60, 80, 3)


def test_wflw_attribute_subsets_and_normaliser(tmp_path: Path) -> None:
    path, _ = wflw_files(tmp_path)
    samples, _ = load_wflw_txt(path, progress=False)
    scheme = load_scheme("wflw98")
    gt = np.stack([s.points for s in samples]).astype(np.float64)
    pred = gt.copy()
    pred[:, :, 0] += np.array([1.0, 2.0, 4.0])[:, None]  # face k is off by its shift at every point
    iod = np.linalg.norm(gt[:, 60] - gt[:, 72], axis=1)
    subsets = attribute_subsets(samples, pred, scheme, name="m", dataset="wflw")
    assert [r.name for r in subsets] == ["m [pose]", "m [expression]", "m [occlusion]"]  # no face has the others
    pose, expr, occl = subsets
    assert pose.n_faces == 1 and pose.nme_mean == pytest.approx(100 * 1.0 / iod[0])
    assert expr.nme_mean == pytest.approx(100 * 2.0 / iod[1])
    assert occl.n_faces == 2 and occl.nme_mean == pytest.approx(100 * np.mean([1.0 / iod[0], 2.0 / iod[1]]))
    assert "60 (eye_r_0)" in occl.normalised_by and "72 (eye_l_4)" in occl.normalised_by


def test_wflw_converts_to_ibug68(tmp_path: Path) -> None:
    path, pts = wflw_files(tmp_path)
    samples, _ = load_dataset(DatasetSpec(str(path), scheme="ibug68"), progress=False)
    s = samples[0]
    assert s.scheme == "ibug68" and s.attributes["pose"]
    for i68, i98 in ((0, 0), (8, 16), (16, 32), (36, 60), (45, 72), (30, 54), (48, 76), (54, 82), (67, 95)):
        np.testing.assert_allclose(s.points[i68], pts[0][i98], atol=1e-4)
