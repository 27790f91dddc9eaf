"""Shared fixtures: real data location (fail, not skip, under FACEPOINTS_REQUIRE_DATA=1) and small generated data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from facepoints.config import data_root

ROOT = Path(__file__).resolve().parents[1]
DATA = data_root()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real annotated faces beside the project; CI sets FACEPOINTS_REQUIRE_DATA=1 so absence fails."""
    if not (DATA / "README.md").exists():
        if os.environ.get("FACEPOINTS_REQUIRE_DATA") == "1":
            pytest.fail(f"real data required (FACEPOINTS_REQUIRE_DATA=1) but not found at {DATA}")
        pytest.skip(f"real data not found at {DATA}")
    return DATA


def synthetic_face(size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A drawn face-like image and 68 points that follow its features (for tests that need no real data)."""
    rng = np.random.default_rng(seed)
    import cv2

    img = np.full((size, size, 3), 40, np.uint8)
    c = size / 2
    r = size * 0.3
    # jaw runs from the image-left to the image-right, as in iBUG 68
    jaw = np.stack([np.linspace(c - r, c + r, 17), c + 0.1 * r + r * np.sin(np.linspace(0, np.pi, 17))], 1)
    brows = np.stack([np.concatenate([np.linspace(c - 0.8 * r, c - 0.2 * r, 5),
                                      np.linspace(c + 0.2 * r, c + 0.8 * r, 5)]),
                      np.full(10, c - 0.6 * r)], 1)
    nose = np.stack([np.concatenate([np.full(4, c), np.linspace(c - 0.2 * r, c + 0.2 * r, 5)]),
                     np.concatenate([np.linspace(c - 0.4 * r, c, 4), np.full(5, c + 0.1 * r)])], 1)

    def eye(cx: float) -> np.ndarray:
        a = np.linspace(0, 2 * np.pi, 7)[:-1]
        return np.stack([cx - 0.15 * r * np.cos(a), c - 0.35 * r - 0.06 * r * np.sin(a)], 1)

    eyes = np.concatenate([eye(c - 0.45 * r), eye(c + 0.45 * r)])
    a = np.linspace(0, 2 * np.pi, 13)[:-1]
    mouth_o = np.stack([c - 0.35 * r * np.cos(a), c + 0.45 * r - 0.12 * r * np.sin(a)], 1)
    a = np.linspace(0, 2 * np.pi, 9)[:-1]
    mouth_i = np.stack([c - 0.25 * r * np.cos(a), c + 0.45 * r - 0.05 * r * np.sin(a)], 1)
    pts = np.concatenate([jaw, brows, nose, eyes, mouth_o, mouth_i]).astype(np.float32)
    pts += rng.normal(0, 0.3, pts.shape).astype(np.float32)
    cv2.ellipse(img, (int(c), int(c)), (int(r * 1.05), int(r * 1.3)), 0, 0, 360, (180, 150, 130), -1)
    cv2.circle(img, (int(c - 0.45 * r), int(c - 0.35 * r)), int(0.15 * r), (30, 30, 200), -1)  # image-left eye: blue
    cv2.circle(img, (int(c + 0.45 * r), int(c - 0.35 * r)), int(0.15 * r), (200, 30, 30), -1)  # image-right eye: red
    cv2.ellipse(img, (int(c), int(c + 0.45 * r)), (int(0.35 * r), int(0.12 * r)), 0, 0, 360, (120, 20, 40), -1)
    return img, pts


@pytest.fixture
def face_image() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_face()
