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
