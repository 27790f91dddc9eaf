"""Alignment for recognition (facepoints.apps.align)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facepoints.apps import align
from facepoints.schemes import load_scheme
from tests.helpers import apply, similarity

ROOT = Path(__file__).resolve().parents[2]
FLIP = load_scheme("ibug68").flip_permutation()
runner = CliRunner()


# ---------------------------------------------------------------- alignment


def test_alignment_matrix_is_equivariant_and_lands_on_the_template(astronaut) -> None:
    _, pts = astronaut
    m0 = align.alignment_matrix(pts)
    t = similarity(-27, 1.7, (31, -12), centre=(256, 256))
    m1 = align.alignment_matrix(apply(t, pts))
    composed = m1 @ np.vstack([t, [0, 0, 1]])
    assert np.allclose(composed, m0, atol=1e-4)
    # the five points of a face that *is* a similarity of the template land exactly on it
    five = apply(similarity(15, 3.0, (100, 50)), align.ARCFACE_112)
    fake = np.zeros((68, 2))
    fake[36:42], fake[42:48], fake[[30, 48, 54]] = five[0], five[1], five[2:]
    assert np.allclose(apply(align.alignment_matrix(fake), five), align.ARCFACE_112, atol=1e-3)
    assert np.allclose(apply(align.alignment_matrix(fake, 224), five), align.template(224), atol=1e-3)


@pytest.mark.parametrize("angle,scale", [(30.0, 1.0), (-20.0, 0.7), (12.0, 1.6)])
def test_a_photo_moved_by_a_known_similarity_gives_the_same_aligned_crop(astronaut, angle, scale) -> None:
    image, pts = astronaut
    t = similarity(angle, scale, (200, 250), centre=(256, 256))
    moved = cv2.warpAffine(image, t, (1000, 1000), flags=cv2.INTER_LINEAR)
    crop = align.align_face(image, pts).astype(np.float64)
    again = align.align_face(moved, apply(t, pts)).astype(np.float64)
    assert crop.shape == again.shape == (112, 112, 3)
    err = np.abs(crop - again).mean()
    assert err < 3.0, f"mean pixel error {err:.2f} grey levels"
    wrong = align.align_face(moved, pts).astype(np.float64)  # points not moved with the photo
    assert np.abs(crop - wrong).mean() > 8 * max(err, 1.0)


def test_the_model_in_the_loop_aligns_a_moved_photo_to_nearly_the_same_crop(model, astronaut) -> None:
    image, pts = astronaut
    t = similarity(8, 1.3, (90, 30), centre=(256, 256))
    moved = cv2.warpAffine(image, t, (800, 760), flags=cv2.INTER_LINEAR)
    faces = model.detect(moved)  # best detection first (the CNN may add a weak false one on the black border)
    assert faces and faces[0].face_score > 0.9
    five = apply(align.alignment_matrix(faces[0].points), align.five_points(faces[0].points))
    five_ref = apply(align.alignment_matrix(pts), align.five_points(pts))
    assert np.abs(five - five_ref).max() < 6.0, "aligned eyes, nose and mouth move by a few pixels at most"


