"""Metrics (pure numpy): NME with visibility and box normalisers."""

from __future__ import annotations

import numpy as np
import pytest

from facepoints.evaluate import compute_metrics, markdown_table
from facepoints.schemes import load_scheme


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
