"""Augmentation: points must follow the pixels, flips must swap labels, runs must repeat."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from facepoints.augment import AugmentConfig, build_augmenter, jitter_box, preview_grid
from facepoints.datasets import Sample
from facepoints.schemes import SchemeError, load_scheme, scheme_from_dict

# every transform off; tests switch on what they exercise
OFF = {
    "flip": 0.0,
    "rotate_p": 0.0,
    "shift_scale_rotate_p": 0.0,
    "brightness_contrast_p": 0.0,
    "blur_p": 0.0,
    "occlusion_p": 0.0,
}


def cfg_with(**kwargs: float) -> AugmentConfig:
    return AugmentConfig(**{**OFF, **kwargs})


@pytest.fixture(scope="module")
def ibug():
    return load_scheme("ibug68")


def face_points(size: int) -> np.ndarray:
    """A frontal ibug68 face, mirror-symmetric about the crop's centre (size - 1) / 2."""
    c, s = (size - 1) / 2.0, float(size)
    pts = np.zeros((68, 2))
    theta = np.linspace(0.0, np.pi, 17)
    pts[0:17] = np.c_[c - 0.35 * s * np.cos(theta), c - 0.15 * s + 0.5 * s * np.sin(theta)]
    brow = np.linspace(0.05, 0.28, 5) * s
    pts[17:22] = np.c_[c - brow[::-1], np.full(5, c - 0.2 * s)]
    pts[22:27] = np.c_[c + brow, np.full(5, c - 0.2 * s)]
    pts[27:31] = np.c_[np.full(4, c), c + np.linspace(-0.12, 0.08, 4) * s]
    pts[31:36] = np.c_[c + np.linspace(-0.08, 0.08, 5) * s, np.full(5, c + 0.12 * s)]

    def ring(cx: float, cy: float, rx: float, ry: float, degrees: list[float]) -> np.ndarray:
        a = np.deg2rad(degrees)
        return np.c_[cx + rx * np.cos(a), cy - ry * np.sin(a)]

    eye = [180, 120, 60, 0, -60, -120]
    pts[36:42] = ring(c - 0.16 * s, c - 0.08 * s, 0.06 * s, 0.025 * s, eye)
    pts[42:48] = ring(c + 0.16 * s, c - 0.08 * s, 0.06 * s, 0.025 * s, eye)
    pts[48:60] = ring(c, c + 0.22 * s, 0.12 * s, 0.05 * s, [180, 150, 120, 90, 60, 30, 0, -30, -60, -90, -120, -150])
    pts[60:68] = ring(c, c + 0.22 * s, 0.08 * s, 0.025 * s, [180, 135, 90, 45, 0, -45, -90, -135])
    return pts.astype(np.float32)


def test_synthetic_face_is_symmetric_under_the_scheme_flip(ibug):
    # guards the fixture: mirrored points, relabelled, give the same face back
    pts = face_points(64)
    mirrored = pts.copy()
    mirrored[:, 0] = 63 - mirrored[:, 0]
    np.testing.assert_allclose(mirrored[ibug.flip_permutation()], pts, atol=1e-4)


def test_flip_twice_returns_the_original(ibug):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    points = rng.uniform(-5, 68, (68, 2)).astype(np.float32)
    mask = np.ones(68, dtype=bool)
    aug = build_augmenter(cfg_with(flip=1.0), ibug, seed=0)
    im1, p1, m1 = aug(image, points, mask)
    assert aug.last_flipped
    assert not np.array_equal(im1, image)
    im2, p2, m2 = aug(im1, p1, m1)
    np.testing.assert_array_equal(im2, image)
    np.testing.assert_allclose(p2, points, atol=1e-4)
    np.testing.assert_array_equal(m2, mask)


@pytest.mark.parametrize("size", [63, 64])
def test_flip_keeps_a_point_on_its_pixel(ibug, size):
    # albumentations 2.0.8 maps x -> W - 1 - x: right for pixel centres at integers
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[7, 5] = 255
    points = np.full((68, 2), np.nan, dtype=np.float32)
    points[30] = (5.0, 7.0)  # nose tip: its own flip partner
    mask = np.zeros(68, dtype=bool)
    mask[30] = True
    out, pts, m = build_augmenter(cfg_with(flip=1.0), ibug)(image, points, mask)
    y, x = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    assert (x, y) == (size - 1 - 5, 7)
    np.testing.assert_allclose(pts[30], (x, y), atol=1e-5)
    assert m[30] and m.sum() == 1


def test_left_eye_points_land_on_the_image_left_eye_after_flip(ibug):
    size = 96
    pts = face_points(size)
    image = np.full((size, size, 3), 60, dtype=np.uint8)
    red, green = (255, 0, 0), (0, 255, 0)
    for idx, colour in ((slice(36, 42), red), (slice(42, 48), green)):
        centre = pts[idx].mean(axis=0)
        axes = (int(0.06 * size * 1.6), int(0.025 * size * 2.5) + 2)
        cx, cy = (int(v) for v in np.rint(centre))
        cv2.ellipse(image, (cx, cy), axes, 0, 0, 360, colour, -1)
    mask = np.ones(68, dtype=bool)
    # before the flip: 36-41 are on the image-left (red) eye
    xy = np.rint(pts[36:42]).astype(int)
    assert (image[xy[:, 1], xy[:, 0]] == red).all()

    out, new, m = build_augmenter(cfg_with(flip=1.0), ibug)(image, pts, mask)
    # the mirrored green eye is now on the image left, and 36-41 must be on it
    xy = np.rint(new[36:42]).astype(int)
    assert (new[36:42, 0] < (size - 1) / 2).all()
    assert (out[xy[:, 1], xy[:, 0]] == green).all()
    xy = np.rint(new[42:48]).astype(int)
    assert (new[42:48, 0] > (size - 1) / 2).all()
    assert (out[xy[:, 1], xy[:, 0]] == red).all()
    assert m.all()


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_points_follow_pixels_under_all_geometric_transforms(ibug, flip):
    size = 96
    chosen = [19, 24, 30, 36, 45, 48, 54, 57]
    base = np.rint(face_points(size))
    points = np.full((68, 2), np.nan, dtype=np.float32)
    points[chosen] = base[chosen]
    mask = np.zeros(68, dtype=bool)
    mask[chosen] = True
    image = np.full((size, size, 3), 10, dtype=np.uint8)
    for x, y in base[chosen].astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    cfg = cfg_with(flip=flip, rotate_p=1.0, shift_scale_rotate_p=1.0)
    moved = 0.0
    for seed in range(4):
        out, pts, m = build_augmenter(cfg, ibug, seed=seed)(image, points, mask)
        assert m.sum() == len(chosen)
        grey = out[..., 0].astype(np.float64)
        for x, y in pts[m]:
            cx, cy = (int(v) for v in np.rint((x, y)))
            win = grey[cy - 3 : cy + 4, cx - 3 : cx + 4]
            assert win.shape == (7, 7), "point left the interior"
            wy, wx = np.unravel_index(np.argmax(win), win.shape)
            assert np.hypot(cx - 3 + wx - x, cy - 3 + wy - y) <= 1.5
            w = np.clip(win - 10.0, 0, None)
            gy, gx = np.mgrid[-3:4, -3:4]
            centroid = np.array([cx + (w * gx).sum() / w.sum(), cy + (w * gy).sum() / w.sum()])
            assert np.hypot(*(centroid - (x, y))) <= 0.25
        unflipped = pts if flip == 0.0 else pts[ibug.flip_permutation()]
        moved = max(moved, float(np.nanmax(np.abs(unflipped - points))))
    assert moved > 2.0, "the transforms never moved the points; the test would prove nothing"


def test_masked_and_nan_points_survive(ibug):
    size = 64
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    points = face_points(size)
    mask = np.ones(68, dtype=bool)
    mask[[0, 5, 36, 50]] = False
    points[~mask] = np.nan
    points[10] = (-12.0, 80.0)  # valid but outside the crop: must be kept, not dropped
    everything = AugmentConfig(
        flip=0.5, rotate_p=1, shift_scale_rotate_p=1, brightness_contrast_p=1, blur_p=1, occlusion_p=1
    )
    aug = build_augmenter(everything, ibug, seed=5)
    perm = ibug.flip_permutation()
    flips = set()
    for _ in range(6):
        out, pts, m = aug(image, points, mask)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert pts.shape == (68, 2) and pts.dtype == np.float32 and m.dtype == bool
        expected = mask[perm] if aug.last_flipped else mask
        np.testing.assert_array_equal(m, expected)
        assert np.isnan(pts[~m]).all()
        assert np.isfinite(pts[m]).all()
        flips.add(aug.last_flipped)
    assert flips == {True, False}
    np.testing.assert_array_equal(mask.sum(), 64)  # inputs untouched


def test_scheme_without_flip_table():
    scheme = scheme_from_dict({"name": "noflip", "points": ["a", "b", "c"], "normalise": [0, 1]})
    with pytest.raises(SchemeError, match="flip"):
        build_augmenter(AugmentConfig(flip=0.5), scheme)
    aug = build_augmenter(AugmentConfig(flip=0.0), scheme, seed=2)
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    points = np.array([[10, 10], [20, 10], [np.nan, np.nan]], dtype=np.float32)
    mask = np.array([True, True, False])
    for _ in range(4):
        _, pts, m = aug(image, points, mask)
        assert not aug.last_flipped
        assert pts.shape == (3, 2) and np.isnan(pts[2]).all()
        np.testing.assert_array_equal(m, mask)


def test_same_seed_same_outputs_and_other_seed_differs(ibug):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    points = face_points(48)
    mask = np.ones(68, dtype=bool)
    cfg = AugmentConfig(occlusion_p=0.5)

    def run(seed: int) -> list:
        aug = build_augmenter(cfg, ibug, seed=seed)
        return [aug(image, points, mask) for _ in range(5)]

    a, b, c = run(11), run(11), run(12)
    for (ia, pa, ma), (ib, pb, mb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(ma, mb)
    assert any(not np.array_equal(pa, pc) for (_, pa, _), (_, pc, _) in zip(a, c))


def test_transforms_share_one_random_stream(ibug):
    # albumentations 2.0.8 Compose(seed=s) seeds every transform with the same s,
    # so transforms with equal p would fire together; the augmenter must avoid that
    aug = build_augmenter(AugmentConfig(), ibug, seed=0)
    assert aug.pipeline is not None and len(aug.pipeline.transforms) >= 3
    assert all(t.py_random is aug.pipeline.py_random for t in aug.pipeline.transforms)


def test_jitter_box_limits():
    box = np.array([10.0, 20.0, 110.0, 170.0])  # w 100, h 150
    rng = np.random.default_rng(0)
    out = np.array([jitter_box(box, rng, 0.1, 0.2) for _ in range(500)])
    dx = (out[:, 0] + out[:, 2]) / 2 - 60.0
    dy = (out[:, 1] + out[:, 3]) / 2 - 95.0
    fw = (out[:, 2] - out[:, 0]) / 100.0
    fh = (out[:, 3] - out[:, 1]) / 150.0
    assert np.abs(dx).max() <= 10.0 + 1e-9 and np.abs(dy).max() <= 15.0 + 1e-9
    assert fw.min() >= 0.8 - 1e-9 and fw.max() <= 1.2 + 1e-9
    np.testing.assert_allclose(fw, fh)
    assert np.abs(dx).max() > 8.0 and fw.max() > 1.15 and fw.min() < 0.85  # it does jitter
    np.testing.assert_allclose(jitter_box(box, rng, 0.0, 0.0), box)
    with pytest.raises(ValueError):
        jitter_box(box, rng, 0.1, 1.5)
    with pytest.raises(ValueError):
        jitter_box(np.array([5.0, 5.0, 1.0, 9.0]), rng, 0.1, 0.1)


def test_config_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="flip"):
        AugmentConfig(flip=1.5)


def test_preview_grid_writes_png(tmp_path, ibug):
    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        image = rng.integers(0, 256, (120, 140, 3), dtype=np.uint8)
        pts = face_points(100) + np.float32(10 + i)
        mask = np.ones(68, dtype=bool)
        mask[i] = False
        pts[~mask] = np.nan
        samples.append(Sample(image, pts, mask, f"synthetic{i}"))
    cfg = AugmentConfig(box_shift=0.05, box_scale=0.1)
    out = preview_grid(samples, cfg, ibug, tmp_path / "sub" / "grid.png", n=6, size=64, seed=1)
    assert out.is_file() and out.stat().st_size > 1000
    with Image.open(out) as im:
        w, h = im.size
    assert w / h == pytest.approx(3 / 2, rel=0.02)  # 6 panels -> 3 columns x 2 rows
