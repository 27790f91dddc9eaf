"""Fixtures of the application tests: the shipped model, the sample face and a two-face test video."""

from __future__ import annotations

import numpy as np
import pytest

import facepoints
from facepoints.cli import sample_image_path
from facepoints.inference import read_image
from facepoints.testing import synth
from tests.helpers import mirror


@pytest.fixture(scope="session")
def model():
    return facepoints.load(threads=1)


@pytest.fixture(scope="session")
def astronaut(model):
    """The public-domain sample photo and the model's points on it (68 points on a real face)."""
    image = read_image(sample_image_path())
    faces = model.detect(image)
    assert len(faces) == 1, "the sample photo has one face"
    return image, faces[0].points


@pytest.fixture(scope="session")
def two_face_video(tmp_path_factory, astronaut):
    """A real mp4v file: the sample face and its mirror image moving; true points known in every frame."""
    image, pts = astronaut
    faces = [(image, pts), (np.ascontiguousarray(image[:, ::-1]), mirror(pts, image.shape[1]))]
    frames, truth = zip(*synth.moving_faces(faces, 45, (640, 360), seed=4))
    path = tmp_path_factory.mktemp("video") / "two.mp4"
    assert synth.write_video(iter(frames), str(path)) == 45
    return path, np.stack(truth)
