"""Helpers of the service tests (fixtures are in conftest.py)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
from PIL import Image

from facepoints.cli import sample_image_path
from facepoints.inference import LandmarkModel

ROOT = Path(__file__).resolve().parents[2]
ASTRONAUT = sample_image_path().read_bytes()


class SlowModel(LandmarkModel):
    """The real model, slowed down so that timing-dependent behaviour is deterministic."""

    delay = 0.6

    def detect(self, image):
        time.sleep(self.delay)
        return super().detect(image)


def post(url: str, path: str, data: bytes, name: str = "photo.jpg", **params) -> httpx.Response:
    return httpx.post(f"{url}{path}", params=params, files={"image": (name, data, "application/octet-stream")},
                      timeout=60)


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code and err["message"], err
    return err


def png_bytes(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()
