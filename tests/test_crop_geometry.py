"""Image <-> crop <-> normalised coordinates, as training and the runtime share them."""

from __future__ import annotations

import numpy as np

from facepoints import geometry


def test_coordinate_round_trip_image_crop_normalised_image() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.uniform(0, 500, (68, 2))
        box = geometry.tight_box(pts) + rng.normal(0, 5, 4)
        size = int(rng.choice([64, 96, 112]))
        m = geometry.crop_matrix(box, size, float(rng.uniform(1.0, 1.6)))
        norm = geometry.to_normalised(geometry.apply_affine(pts, m), size)
        back = geometry.apply_affine(geometry.from_normalised(norm, size), geometry.invert_affine(m))
        assert np.abs(back - pts).max() < 0.01


def test_a_batch_of_turned_crops_maps_back_to_each_face() -> None:
    """The runtime maps a whole batch back in one call: each face through its own (turned) crop, NaNs kept."""
    rng = np.random.default_rng(1)
    faces = [rng.uniform(0, 400, (68, 2)) for _ in range(5)]
    mats = np.stack([geometry.crop_matrix(geometry.tight_box(p), 96, 1.25, float(a))
                     for p, a in zip(faces, rng.uniform(-0.8, 0.8, 5))])
    norm = np.stack([geometry.to_normalised(geometry.apply_affine(p, m), 96) for p, m in zip(faces, mats)])
    norm[2, 7] = np.nan
    back = geometry.normalised_to_image(norm, mats, 96)
    assert back.shape == (5, 68, 2) and np.isnan(back[2, 7]).all()
    assert np.nanmax(np.abs(back - np.stack(faces))) < 1e-9
    assert np.allclose(geometry.normalised_to_image(norm[3], mats[3], 96), faces[3])


def test_crop_follows_pixels() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    img[120, 170] = 255  # a single bright pixel
    box = np.array([100.0, 80.0, 220.0, 190.0])
    m = geometry.crop_matrix(box, 240, 1.0)  # 2x upscale, exact pixel grid
    crop = geometry.warp_crop(img, m, 240)
    u = geometry.apply_affine(np.array([[170.0, 120.0]]), m)[0]
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert abs(x - u[0]) <= 1.0 and abs(y - u[1]) <= 1.0
    # normalised 0 and 1 are the crop's outer edges
    assert np.allclose(geometry.from_normalised(np.array([0.0, 1.0]), 240), [-0.5, 239.5])


def test_crop_shift_measures_a_move_zoom_or_turn_of_the_crop_in_its_side() -> None:
    box = np.array([[100.0, 100.0, 200.0, 200.0]])
    zero = np.zeros(1)
    assert geometry.crop_shift(box, zero, box, zero)[0] == 0.0
    assert np.isclose(geometry.crop_shift(box, zero, box + [10, 0, 10, 0], zero)[0], 0.1)
    bigger = np.array([[95.0, 95.0, 205.0, 205.0]])  # corners move 5 px along each axis, the side is 110
    assert np.isclose(geometry.crop_shift(box, zero, bigger, zero)[0], np.hypot(5, 5) / 110)
    turn = 0.2  # corners at half a diagonal from the centre move by 2 sin(turn / 2) of it
    assert np.isclose(geometry.crop_shift(box, zero, box, np.array([turn]))[0], 2 * np.sin(turn / 2) / np.sqrt(2))


def test_upright_boxes_are_upright_box_for_many_faces() -> None:
    rng = np.random.default_rng(0)
    pts, angles = rng.normal(100, 30, (6, 68, 2)), rng.uniform(-1.2, 1.2, 6)
    many = geometry.upright_boxes(pts, angles)
    assert np.allclose(many, [geometry.upright_box(p, a) for p, a in zip(pts, angles)])
    assert np.allclose(geometry.upright_boxes(pts[:1], np.zeros(1))[0], [*pts[0].min(axis=0), *pts[0].max(axis=0)])
