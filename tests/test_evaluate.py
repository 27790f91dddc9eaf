"""Metrics on hand-computed cases, reports, plots and drawing."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from facepoints.datasets import Sample
from facepoints.evaluate import (
    EvalResult,
    auc,
    ced,
    compute_metrics,
    evaluate_predictions,
    failure_rate,
    markdown_table,
    nme,
    plot_ced,
    plot_extremes,
    region_nme,
    write_report,
)
from facepoints.schemes import PointScheme
from facepoints.viz import draw_faces, draw_points, save_image

# 4-point toy scheme: points 0 and 1 are the "eye corners" 10 px apart.
TOY = PointScheme(
    name="toy4",
    points=("eye_a", "eye_b", "nose", "mouth"),
    regions={"eyes": (0, 1), "lower": (2, 3)},
    normalise=(0, 1),
)

GT = np.array(
    [
        [[0.0, 0.0], [10.0, 0.0], [5.0, 5.0], [5.0, 10.0]],  # normaliser 10
        [[0.0, 0.0], [0.0, 20.0], [5.0, 5.0], [5.0, 10.0]],  # normaliser 20
    ]
)
# Offsets: face 0 -> errors 1, 0, 3 (3-4-5 triangle: 5), 2  => mean 2.0 px / 10
#          face 1 -> errors 0, 0, 0, 4                       => mean 1.0 px / 20
OFFSETS = np.array(
    [
        [[1.0, 0.0], [0.0, 0.0], [3.0, 4.0], [0.0, -2.0]],
        [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [4.0, 0.0]],
    ]
)


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


def _result() -> EvalResult:
    pred = GT + OFFSETS
    return compute_metrics(pred, GT, None, TOY, name="modelA", dataset="toyset", sources=["a.png", "b.png"])


def test_compute_metrics_and_markdown():
    res = _result()
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


def test_report_roundtrip(tmp_path):
    res = _result()
    paths = write_report([res], tmp_path / "rep", "bench")
    assert paths["json"].name == "bench.json" and paths["md"].name == "bench.md"
    data = json.loads(paths["json"].read_text())
    (d,) = data["results"]
    assert d["nme_mean"] == pytest.approx(res.nme_mean)
    assert d["failure_rate"] == pytest.approx(res.failure_rate)
    assert d["auc"] == pytest.approx(res.auc)
    assert d["region_nme"] == pytest.approx(res.region_nme)
    back = EvalResult.from_dict(d)
    np.testing.assert_allclose(back.errors, res.errors)
    assert back.nme_median == pytest.approx(res.nme_median)
    assert "12.50" in paths["md"].read_text()


def _png_ok(path):
    assert path.exists() and path.stat().st_size > 2000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_ced(tmp_path):
    res = _result()
    other = compute_metrics(GT + OFFSETS * 2, GT, None, TOY, name="modelB", dataset="toyset")
    _png_ok(plot_ced([res, other], tmp_path / "ced.png"))


def _samples(n=3, size=64):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        pts = np.array([[20, 25], [44, 25], [32, 35], [32, 46]], np.float32) + i
        out.append(Sample(img, pts, np.ones(4, bool), f"img_{i}.png", scheme="toy4"))
    return out


def test_plot_extremes_and_evaluate_predictions(tmp_path):
    samples = _samples(5)
    gt = np.stack([s.points for s in samples]).astype(np.float64)
    pred = gt + np.arange(5)[:, None, None] * 0.7
    errors = nme(pred, gt, None, (0, 1))
    _png_ok(plot_extremes(samples, pred, errors, tmp_path / "ext.png", n=2))
    _png_ok(plot_extremes(samples, pred, errors, tmp_path / "ext_scheme.png", n=8, scheme=TOY))
    res = evaluate_predictions(samples, pred, TOY, name="m 1", dataset="toy", out_dir=tmp_path / "out")
    assert res.n_faces == 5
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["m_1_toy.json", "m_1_toy.md", "m_1_toy_ced.png", "m_1_toy_extremes.png"]
    for f in ("m_1_toy_ced.png", "m_1_toy_extremes.png"):
        _png_ok(tmp_path / "out" / f)


def test_draw_points_local_and_subpixel():
    img = np.zeros((100, 120, 3), np.uint8)
    out = draw_points(img, np.array([[30.5, 40.0], [np.nan, 5.0]]), color=(0, 255, 0), radius=3)
    assert img.sum() == 0  # input untouched
    assert out[40, 30, 1] > 0 and out[40, 31, 1] > 0  # both pixels around x=30.5
    assert out[40, 30, 0] == 0  # colour channel order respected
    ys, xs = np.nonzero(out[..., 1])
    w = out[ys, xs, 1].astype(float)
    assert abs((xs * w).sum() / w.sum() - 30.5) < 0.1 and abs((ys * w).sum() / w.sum() - 40.0) < 0.1
    assert out[:30].sum() == 0 and out[:, 40:].sum() == 0  # nothing far away (NaN point skipped)
    masked = draw_points(img, np.array([[30.0, 40.0]]), mask=np.array([False]))
    assert masked.sum() == 0


def test_draw_points_scheme_colours_and_faces(tmp_path):
    img = np.zeros((60, 60, 3), np.uint8)
    pts = np.array([[10, 10], [50, 10], [30, 30], [30, 50]], float)
    out = draw_points(img, pts, scheme=TOY, radius=2)
    assert not np.array_equal(out[10, 10], out[30, 30])  # different regions, different colours
    assert np.array_equal(out[10, 10], out[10, 50])
    faces = draw_faces(img, [(np.array([5, 5, 55, 55]), pts)], scheme=TOY)
    assert faces[5, 30].any() and faces[30, 5].any()  # box edges
    assert not draw_faces(img, [(np.array([5, 5, 55, 55]), pts)], draw_boxes=False)[5, 30].any()
    p = save_image(tmp_path / "sub" / "x.png", faces)
    import cv2

    back = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, faces)


def test_modules_do_not_import_torch():
    import os
    from pathlib import Path

    import facepoints

    root = str(Path(next(iter(facepoints.__path__))).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = (
        "import sys, facepoints.evaluate, facepoints.viz; "
        "assert 'torch' not in sys.modules; assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
