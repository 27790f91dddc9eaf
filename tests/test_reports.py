"""Reports: JSON/markdown round trip, CED plots, best/worst grids, point drawing; no torch imported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from facepoints.datasets import Sample
from facepoints.metrics import EvalResult, compute_metrics, nme
from facepoints.reports import evaluate_predictions, plot_ced, plot_extremes, write_report
from facepoints.viz import draw_faces, draw_points, save_image
from tests.evaluation_fixtures import GT, OFFSETS, TOY, toy_result


def test_report_roundtrip(tmp_path):
    res = toy_result()
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
    res = toy_result()
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
        "import sys, facepoints.reports, facepoints.viz; "
        "assert 'torch' not in sys.modules; assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    pure = ("import sys, facepoints.metrics; "
            "assert not {'torch', 'matplotlib', 'PIL', 'cv2'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", pure], check=True, env=env)  # metrics are numpy only
    data = ("import sys, facepoints.datasets, facepoints.config, facepoints.reports; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", data], check=True, env=env)  # data code never imports models
