"""Metrics (pure numpy): NME, region NME, failure rate, AUC, CED, skipped faces, visibility and box normalisers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facepoints.metrics import auc, ced, compute_metrics, contour_nme, failure_rate, nme, region_nme
from facepoints.reports import markdown_table
from facepoints.schemes import load_scheme
from tests.evaluation_fixtures import GT, OFFSETS, TOY, toy_result


def test_nme_hand_computed():
    pred = GT + OFFSETS
    e = nme(pred, GT, None, (0, 1))
    assert e.shape == (2,)
    assert abs(e[0] - (1 + 0 + 5 + 2) / 4 / 10) < 1e-9
    assert abs(e[1] - (0 + 0 + 0 + 4) / 4 / 20) < 1e-9


def test_masked_points_excluded():
    pred = GT + OFFSETS
    mask = np.ones((2, 4), bool)
    mask[0, 2] = False  # drop the 5-px error
    gt = GT.copy()
    gt[1, 3] = np.nan  # unannotated point counts as invalid even if the mask says valid
    e = nme(pred, gt, mask, (0, 1))
    assert abs(e[0] - (1 + 0 + 2) / 3 / 10) < 1e-9
    assert abs(e[1] - 0.0) < 1e-9


def test_nan_for_invalid_normaliser():
    pred = GT + OFFSETS
    mask = np.ones((2, 4), bool)
    mask[0, 1] = False  # normaliser point not annotated
    gt = GT.copy()
    gt[1, 1] = gt[1, 0]  # normaliser distance zero
    e = nme(pred, gt, mask, (0, 1))
    assert np.isnan(e).all()


def test_nonfinite_prediction_is_failure():
    pred = GT + OFFSETS
    pred[1, 2] = np.nan
    e = nme(pred, GT, None, (0, 1))
    assert np.isinf(e[1]) and np.isfinite(e[0])
    res = compute_metrics(pred, GT, None, TOY, name="m", dataset="d", sources=["a.jpg", "b.jpg"])
    assert res.n_faces == 2
    assert res.failure_rate == pytest.approx(100.0)  # face 0 (0.2) fails too; face 1 failed outright
    assert res.nme_mean == pytest.approx(0.2 * 100)  # mean over the finite face only
    assert res.skipped[0][0] == "b.jpg" and "non-finite" in res.skipped[0][1]


def test_region_nme():
    pred = GT + OFFSETS
    r = region_nme(pred, GT, None, TOY)
    assert set(r) == {"eyes", "lower"}
    np.testing.assert_allclose(r["eyes"], [(1 + 0) / 2 / 10, 0.0], atol=1e-12)
    np.testing.assert_allclose(r["lower"], [(5 + 2) / 2 / 10, (0 + 4) / 2 / 20], atol=1e-12)


def test_contour_nme_splits_sliding_along_the_jaw_from_errors_off_it():
    scheme = load_scheme("ibug68")
    gt = np.zeros((2, 68, 2))
    gt[:, :, 0] = np.arange(68) * 2.0  # the jaw a straight horizontal line
    gt[:, 36], gt[:, 45] = (0.0, -10.0), (40.0, -10.0)  # eye corners 40 px apart
    pred = gt.copy()
    pred[0, :17, 0] += 4.0  # face 0 slides along the line, face 1 moves off it
    pred[1, :17, 1] += 2.0
    mask = np.ones((2, 68), bool)
    mask[1, 3] = False  # a masked point counts neither way
    along, across = contour_nme(pred, gt, mask, scheme, "jaw")
    np.testing.assert_allclose(along, [4 / 40, 0.0], atol=1e-12)
    np.testing.assert_allclose(across, [0.0, 2 / 40], atol=1e-12)
    pred[0, 5] = np.nan
    along, _ = contour_nme(pred, gt, None, scheme, "jaw")
    assert along[0] == pytest.approx(4 / 40)  # an unpredicted point is left out here; nme() calls it a failure


def test_failure_rate_auc_ced():
    errs = [0.0, 0.05, 0.2]
    assert failure_rate(errs) == pytest.approx(1 / 3)
    assert failure_rate(errs, threshold=0.04) == pytest.approx(2 / 3)
    assert failure_rate([0.1]) == 0.0  # "> threshold", not ">="
    # CED on [0, 0.1]: 1/3 from 0, 2/3 from 0.05 => area 1/3*0.1 + 1/3*0.05 = 0.05; / 0.1 = 0.5
    assert auc(errs) == pytest.approx(0.5, abs=1e-12)
    assert auc([0.0]) == 1.0 and auc([0.3]) == 0.0
    thr, frac = ced(errs, max_error=0.1, steps=1000)
    assert thr[0] == 0.0 and thr[-1] == pytest.approx(0.1) and len(thr) == 1001
    assert frac[0] == pytest.approx(1 / 3) and frac[-1] == pytest.approx(2 / 3)
    # the exact AUC agrees with the trapezoid on the fine CED grid
    trap = float(np.sum((frac[1:] + frac[:-1]) / 2 * np.diff(thr))) / 0.1
    assert trap == pytest.approx(auc(errs), abs=2e-3)
    # NaN (unmeasurable) faces are ignored, inf (failed) faces count as failures
    assert failure_rate([0.0, np.nan, np.inf]) == pytest.approx(0.5)
    assert math.isnan(auc([np.nan]))


def test_compute_metrics_and_markdown():
    res = toy_result()
    assert res.n_faces == 2
    assert res.nme_mean == pytest.approx((0.2 + 0.05) / 2 * 100)
    assert res.nme_median == pytest.approx(12.5)
    assert res.failure_rate == pytest.approx(50.0)  # 0.2 > 0.1
    assert res.auc == pytest.approx((0 + 0.5) / 2)
    assert res.region_nme["eyes"] == pytest.approx((0.05 + 0.0) / 2 * 100)
    assert res.skipped == []
    table = markdown_table([res])
    for s in ("modelA", "toyset", "| 2 |", "12.50", "50.00", "0.2500", "eyes", "2.50", "lower"):
        assert s in table
    assert "modelA" in res.to_markdown()


def test_skipped_faces_reported():
    gt = GT.copy()
    mask = np.ones((2, 4), bool)
    mask[1, 0] = False
    res = compute_metrics(GT + OFFSETS, gt, mask, TOY, name="m", dataset="d", sources=["a", "b"])
    assert res.n_faces == 1
    assert res.skipped == [("b", "normalising points 0/1 not annotated")]
    assert np.isnan(res.errors[1])


def test_visible_only_and_all_points_nme() -> None:
    scheme = load_scheme("cofw29")
    gt = np.zeros((2, 29, 2))
    gt[:, :, 0] = np.arange(29)
    gt[:, 9] = [20.0, 0.0]  # normaliser: points 8 (8, 0) and 9 (20, 0) are 12 px apart
    pred = gt.copy()
    pred[:, 5] += [0.0, 29 * 1.2]  # one point off by 34.8 px: all-points mean error 1.2 px
    visible = np.ones((2, 29), bool)
    visible[0, 5] = False  # face 0: the bad point is occluded
    res = compute_metrics(pred, gt, None, scheme, name="m", dataset="d", visible=visible)
    np.testing.assert_allclose(res.errors, [0.1, 0.1])
    np.testing.assert_allclose(res.errors_visible, [0.0, 0.1])  # face 1 has every point visible
    assert res.nme_mean == pytest.approx(10.0) and res.nme_visible_mean == pytest.approx(5.0)
    assert "NME vis %" in markdown_table([res]) and res.to_dict()["nme_visible_mean"] == pytest.approx(
        res.nme_visible_mean)
    plain = compute_metrics(pred, gt, None, scheme, name="m", dataset="d")
    assert plain.errors_visible is None and "NME vis" not in markdown_table([plain])


def test_box_normalised_nme_for_aflw() -> None:
    scheme = load_scheme("aflw19")
    gt = np.random.default_rng(0).uniform(10, 90, (2, 19, 2))
    pred = gt + [3.0, 4.0]  # every point 5 px off
    boxes = np.array([[0.0, 0.0, 40.0, 90.0], [np.nan] * 4])  # face 1 has no box: its points' tight box
    res = compute_metrics(pred, gt, None, scheme, name="m", dataset="d", boxes=boxes)
    tight = np.sqrt(np.prod(gt[1].max(0) - gt[1].min(0)))
    np.testing.assert_allclose(res.errors, [5 / 60.0, 5 / tight])
    assert res.normaliser is None and "face box" in res.normalised_by and "face box" in res.to_markdown()
