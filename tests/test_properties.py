"""Property-based tests (hypothesis): coordinate and box transforms, loaders, and upload decoding.

These state what must hold for every input, not just the examples we thought
of: a crop and its inverse give the points back, a box map commutes with
mirroring, a loader returns what a writer wrote, and no byte string makes the
upload decoder raise anything but a clear refusal.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from facepoints.cli import sample_image_path
from facepoints.datasets import clean_points, load_youtube_csv, read_pts, write_pts
from facepoints.detectors import BoxMap, Detection, box_iou, fit_box_map
from facepoints.geometry import (
    apply_affine,
    clip_to_image,
    crop_matrix,
    from_normalised,
    invert_affine,
    square_region,
    tight_box,
    to_normalised,
)
from facepoints.inference import ImageError, as_rgb
from facepoints.schemes import convert_points, load_scheme

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

coord = st.floats(-2000, 2000, allow_nan=False, allow_infinity=False)
side = st.floats(2, 1500, allow_nan=False, allow_infinity=False)


@st.composite
def boxes(draw) -> np.ndarray:
    x0, y0, w, h = draw(coord), draw(coord), draw(side), draw(side)
    return np.array([x0, y0, x0 + w, y0 + h])


def points(n: int = 68, lo: float = -500, hi: float = 2500):
    return arrays(np.float64, (n, 2), elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False))


# ---------------------------------------------------------------- geometry


@FAST
@given(box=boxes(), size=st.integers(8, 256), context=st.floats(1.0, 2.0), pts=points(12))
def test_crop_matrix_and_its_inverse_give_the_points_back(box, size, context, pts) -> None:
    m = crop_matrix(box, size, context)
    back = apply_affine(apply_affine(pts, m), invert_affine(m))
    np.testing.assert_allclose(back, pts, atol=1e-6 * (1 + np.abs(pts).max()))


@FAST
@given(box=boxes(), size=st.integers(8, 256), context=st.floats(1.0, 2.0))
def test_the_square_region_fills_the_crop_edge_to_edge(box, size, context) -> None:
    cx, cy, s = square_region(box, context)
    assert s >= max(box[2] - box[0], box[3] - box[1]) * context - 1e-9
    corners = np.array([[cx - s / 2, cy - s / 2], [cx + s / 2, cy + s / 2], [cx, cy]])
    crop = apply_affine(corners, crop_matrix(box, size, context))
    # pixel edges: -0.5 and S - 0.5; the centre lands on the crop's centre
    np.testing.assert_allclose(crop, [[-0.5, -0.5], [size - 0.5, size - 0.5], [(size - 1) / 2, (size - 1) / 2]],
                               atol=1e-6 * size)
    inside = apply_affine(np.array([[box[0], box[1]], [box[2], box[3]]]), crop_matrix(box, size, context))
    assert (inside >= -0.5 - 1e-6).all() and (inside <= size - 0.5 + 1e-6).all()


@FAST
@given(pts=points(20, -50, 300), size=st.integers(1, 512))
def test_normalised_coordinates_round_trip(pts, size) -> None:
    np.testing.assert_allclose(from_normalised(to_normalised(pts, size), size), pts, atol=1e-9)


@FAST
@given(pts=points(30), mask=arrays(bool, 30))
def test_tight_box_is_the_smallest_box_around_the_valid_points(pts, mask) -> None:
    pts = pts.copy()
    pts[~mask & (np.arange(30) % 2 == 0)] = np.nan  # masked points may also be NaN: both are ignored
    if mask.sum() < 2:
        with pytest.raises(ValueError):
            tight_box(pts, mask)
        return
    b = tight_box(pts, mask)
    valid = pts[mask]
    assert (valid[:, 0] >= b[0]).all() and (valid[:, 0] <= b[2]).all()
    assert (valid[:, 1] >= b[1]).all() and (valid[:, 1] <= b[3]).all()
    assert np.isclose(valid[:, 0], b[0]).any() and np.isclose(valid[:, 1], b[3]).any()
    perm = np.random.default_rng(0).permutation(30)
    np.testing.assert_array_equal(tight_box(pts[perm], mask[perm]), b)


@FAST
@given(pts=points(25, -3000, 3000), w=st.integers(1, 4000), h=st.integers(1, 4000))
def test_clipping_keeps_points_in_the_image_and_is_idempotent(pts, w, h) -> None:
    c = clip_to_image(pts, w, h)
    assert (c[:, 0] >= -0.5).all() and (c[:, 0] <= w - 0.5).all()
    assert (c[:, 1] >= -0.5).all() and (c[:, 1] <= h - 0.5).all()
    np.testing.assert_array_equal(clip_to_image(c, w, h), c)
    inside = (pts[:, 0] >= -0.5) & (pts[:, 0] <= w - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] <= h - 0.5)
    np.testing.assert_array_equal(c[inside], pts[inside])


@FAST
@given(a=boxes(), b=boxes(), dx=coord, dy=coord)
def test_iou_is_symmetric_bounded_and_shift_invariant(a, b, dx, dy) -> None:
    ab, ba = box_iou(a, b)[0, 0], box_iou(b, a)[0, 0]
    assert 0.0 <= ab <= 1.0 + 1e-12 and np.isclose(ab, ba)
    assert np.isclose(box_iou(a, a)[0, 0], 1.0)
    shift = np.array([dx, dy, dx, dy])
    assert np.isclose(box_iou(a + shift, b + shift)[0, 0], ab, atol=1e-6)


box_maps = st.builds(BoxMap, a_x=st.floats(-0.3, 0.3), a_y=st.floats(-0.3, 0.3), s_w=st.floats(0.5, 1.5),
                     s_h=st.floats(0.5, 1.5))


@FAST
@given(m=box_maps, box=boxes(), width=st.integers(1, 5000), k=st.floats(0.1, 10))
def test_box_map_commutes_with_mirroring_and_scaling(m, box, width, k) -> None:
    def mirror(b: np.ndarray) -> np.ndarray:  # x -> (W - 1) - x, pixel centres at integers
        return np.array([width - 1 - b[2], b[1], width - 1 - b[0], b[3]])

    np.testing.assert_allclose(m.apply(mirror(box), mirrored=True), mirror(m.apply(box)), atol=1e-6)
    np.testing.assert_allclose(m.apply(box * k), m.apply(box) * k, rtol=1e-9, atol=1e-6)


@FAST
@given(m=box_maps, dets=st.lists(boxes(), min_size=1, max_size=12), mirrored=st.lists(st.booleans(), min_size=12,
                                                                                      max_size=12))
def test_fitting_a_box_map_recovers_an_exact_map(m, dets, mirrored) -> None:
    detections = [Detection(b, 1.0, mirrored=f) for b, f in zip(dets, mirrored)]
    tight = np.stack([m.apply(d.box, mirrored=d.mirrored) for d in detections])
    fit = fit_box_map(detections, tight)
    np.testing.assert_allclose([fit.a_x, fit.a_y, fit.s_w, fit.s_h], [m.a_x, m.a_y, m.s_w, m.s_h], atol=1e-6)


SCHEMES = {name: load_scheme(name) for name in ("ibug68", "five", "kaggle15")}


@FAST
@given(pts=points(68, -100, 600))
def test_scheme_conversion_is_the_mean_of_the_listed_points(pts) -> None:
    for target in ("five", "kaggle15"):
        out, valid = convert_points(pts, None, SCHEMES["ibug68"], SCHEMES[target])
        groups = SCHEMES[target].derive["ibug68"]
        assert valid.all() and out.shape == (len(groups), 2)
        for i, g in enumerate(groups):
            np.testing.assert_allclose(out[i], pts[list(g)].mean(axis=0))


# ---------------------------------------------------------------- loaders


@FAST
@given(pts=points(40, -3000, 3000), w=st.integers(1, 2000), h=st.integers(1, 2000),
       holes=arrays(bool, 40))
def test_cleaning_masks_exactly_the_missing_and_far_out_points(pts, w, h, holes) -> None:
    pts = pts.copy()
    pts[holes] = np.nan
    cleaned, mask, n_missing, n_out = clean_points(pts, (w, h))
    assert n_missing == holes.sum()
    assert np.isnan(cleaned[~mask]).all() and np.isfinite(cleaned[mask]).all()
    np.testing.assert_allclose(cleaned[mask], pts[mask].astype(np.float32))
    x, y = cleaned[mask, 0], cleaned[mask, 1]
    assert ((x >= -0.25 * w) & (x <= 1.25 * w) & (y >= -0.25 * h) & (y <= 1.25 * h)).all()
    assert mask.sum() + n_missing + n_out == 40


@FILES
@given(pts=points(68, -1000, 5000))
def test_pts_files_round_trip(pts) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "face.pts"
        write_pts(path, pts)
        np.testing.assert_allclose(read_pts(path), pts, atol=6e-4)  # the format keeps 3 decimals


@FILES
@given(faces=st.lists(st.tuples(points(68, 0, 95), arrays(bool, 68)), min_size=1, max_size=4),
       junk=st.sampled_from(["", "nan", "NaN"]))
def test_youtube_csv_loads_what_was_written(faces, junk) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        Image.new("RGB", (96, 96), (90, 80, 70)).save(folder / "Person_Name_0001.png")
        rows = ["file," + ",".join(f"{a}{i}" for i in range(68) for a in "xy")]
        for pts, holes in faces:
            values = [junk if holes[i] else repr(float(v)) for i, xy in enumerate(pts) for v in xy]
            rows.append("Person_Name_0001.png," + ",".join(values))
        (folder / "faces.csv").write_text("\n".join(rows) + "\n")
        samples, report = load_youtube_csv(folder / "faces.csv", images=folder, progress=False)
        usable = [(p, h) for p, h in faces if (~h).sum() >= 2]
        assert len(samples) == len(usable) and report.kept == len(usable)
        for sample, (pts, holes) in zip(samples, usable):
            np.testing.assert_array_equal(sample.mask, ~holes)
            np.testing.assert_allclose(sample.points[~holes], pts[~holes].astype(np.float32))
            assert sample.group == "Person_Name"


# ---------------------------------------------------------------- images and uploads


@FAST
@given(shape=st.sampled_from([(5, 7), (5, 7, 1), (5, 7, 3), (5, 7, 4)]),
       dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64]), data=st.data())
def test_as_rgb_turns_any_image_array_into_rgb_uint8(shape, dtype, data) -> None:
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(-10, 300, width=32) | st.just(float("nan"))
    else:
        info = np.iinfo(dtype)
        elements = st.integers(max(info.min, -1000), min(info.max, 70000))
    a = data.draw(arrays(dtype, shape, elements=elements))
    out = as_rgb(a)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    if dtype == np.uint8 and len(shape) == 3 and shape[2] == 3:
        np.testing.assert_array_equal(out, a)


@FAST
@given(shape=st.sampled_from([(0, 4), (4, 0, 3), (3,), (2, 2, 2), (2, 2, 5), (1, 2, 3, 4)]))
def test_as_rgb_refuses_what_is_not_an_image(shape) -> None:
    with pytest.raises(ImageError):
        as_rgb(np.zeros(shape, np.uint8))


def _small_sample(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.open(sample_image_path()).convert("RGB").resize((48, 48)).save(buf, format=fmt)
    return buf.getvalue()


SMALL = {fmt: _small_sample(fmt) for fmt in ("JPEG", "PNG", "BMP")}


def _decodes_or_is_refused_clearly(data: bytes) -> None:
    from facepoints.serve import ApiError, Limits, decode_upload

    try:
        image = decode_upload(data, Limits())
    except ApiError as e:
        assert 400 <= e.status < 500 and e.code and e.message
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@FAST
@given(data=st.binary(max_size=2048))
def test_any_bytes_decode_or_are_refused_clearly(data) -> None:
    _decodes_or_is_refused_clearly(data)


@FAST
@given(fmt=st.sampled_from(sorted(SMALL)), cut=st.integers(0, 10_000), flips=st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_damaged_photos_decode_or_are_refused_clearly(fmt, cut, flips) -> None:
    data = bytearray(SMALL[fmt])
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[: max(0, len(data) - cut % len(data))])
    assume(data != SMALL[fmt])
    _decodes_or_is_refused_clearly(data)
