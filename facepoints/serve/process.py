"""Running the service: uvicorn configured with the guards and limits, in this process or a child one."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

from fastapi import FastAPI

from facepoints.serve.app import create_app
from facepoints.serve.common import Limits
from facepoints.serve.guards import guarded_protocol
from facepoints.serve.memory import tune_malloc


def uvicorn_config(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, **kw):
    """uvicorn's settings for ``app``: its guarded protocol, keep-alive, head size and shutdown from its limits."""
    import uvicorn

    limits: Limits = app.state.limits
    settings = {"timeout_graceful_shutdown": 5, **kw}
    return uvicorn.Config(app, host=host, port=port, http=guarded_protocol(limits),
                          timeout_keep_alive=max(1, round(limits.keep_alive)),
                          h11_max_incomplete_event_size=limits.max_header_bytes, **settings)


def run(host: str = "127.0.0.1", port: int = 8000, *, model: str | None = None, limits: Limits | None = None,
        log_level: str = "info", detector: str | None = None) -> None:
    """Serve until interrupted (``facepoints serve``); ``detector``: a name of ``facepoints.detectors.DETECTORS``."""
    import uvicorn

    tune_malloc()  # process-wide, so here and not in create_app: big buffers go back to the OS when freed
    app = create_app(model, limits=limits, detector=detector)
    uvicorn.Server(uvicorn_config(app, host, port, log_level=log_level)).run()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_background(*args: str, host: str = "127.0.0.1", port: int | None = None, timeout: float = 60.0,
                        limits: Limits | None = None) -> Iterator[str]:
    """Run ``facepoints serve`` in a child process on a loopback port and yield its base URL.

    A real process (not an in-process client) so tests and the load benchmark
    see what users get: uvicorn, sockets, the CLI's options, the process's own
    memory. Extra ``args`` go to the command line; ``limits`` (all of them, as
    JSON) bypass the CLI's options. The child is stopped on exit, however the block ends.
    """
    port = port or free_port(host)
    if limits is None:
        cmd = [sys.executable, "-m", "facepoints.cli", "serve", "--host", host, "--port", str(port),
               "--log-level", "warning", *args]
    else:
        cmd = [sys.executable, "-m", "facepoints.serve", host, str(port), json.dumps(asdict(limits)), *args]
    url = f"http://{host}:{port}"
    # a file, not a pipe: nobody reads a pipe while the server runs, and a full one would block the child
    with tempfile.TemporaryFile(mode="w+") as output:
        proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_until_up(proc, url, timeout, output)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _wait_until_up(proc: subprocess.Popen, url: str, timeout: float, output) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            output.seek(0)
            raise RuntimeError(f"`{' '.join(proc.args)}` exited with {proc.returncode}:\n{output.read()[-4000:]}")
        try:
            with opener.open(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service did not answer on {url} within {timeout:.0f} s")
        time.sleep(0.2)
