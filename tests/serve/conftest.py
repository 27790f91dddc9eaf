"""Shared fixtures of the service tests: real servers on 127.0.0.1 (a child process, or uvicorn in a thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from facepoints.cli import sample_image_path
from facepoints.inference import LandmarkModel, load, read_image
from facepoints.serve import free_port, serve_in_background, uvicorn_config


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`facepoints serve` as users start it, in a child process."""
    with serve_in_background() as url:
        yield url


@pytest.fixture(scope="module")
def model() -> LandmarkModel:
    return load()


@pytest.fixture(scope="module")
def reference(model: LandmarkModel):
    (face,) = model.detect(read_image(sample_image_path()))
    return face


@pytest.fixture
def in_thread_server():
    """A real uvicorn server in this process, for apps built with custom models or limits."""
    servers = []

    def start(app) -> str:
        port = free_port()
        srv = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not srv.started:
            assert time.monotonic() < deadline, "in-thread server did not start"
            time.sleep(0.05)
        servers.append((srv, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(timeout=10)
