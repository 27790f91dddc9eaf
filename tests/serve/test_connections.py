"""Slow, oversized and abandoned connections end, with a JSON answer where anyone is left to read it.

Raw sockets on 127.0.0.1, a bounded number of them, each loop bounded in
time; the servers are real uvicorn servers with the service's protocol.
"""

from __future__ import annotations

import io
import json
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

from facepoints.inference import resolve_model
from facepoints.serve import Limits, create_app
from tests.serve.helpers import ASTRONAUT, SlowModel, assert_error, png_bytes, post

BOUNDARY = "xyz"
GIVE_UP = 30.0  # seconds: no test loop runs longer than this


def connect(url: str) -> socket.socket:
    u = urlparse(url)
    assert u.hostname == "127.0.0.1"
    return socket.create_connection((u.hostname, u.port), timeout=GIVE_UP)


def multipart(data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(length: int) -> bytes:
    return (f"POST /v1/landmarks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode()


def parse(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers[b"content-type"].startswith(b"application/json"), raw[:300]
    return status, json.loads(body)


def trickle(socks: list[socket.socket], byte: bytes, every: float,
            stop_after: float = GIVE_UP) -> dict[socket.socket, bytes]:
    """Send one byte per socket every ``every`` seconds (for ``stop_after`` seconds) until the server closes each;
    what each received. Stopping before the server's deadline leaves no unread byte when it closes: a close
    with unread input is a TCP reset, which can wipe its 408 from the client's buffer before it is read."""
    received = {s: b"" for s in socks}
    open_ = set(socks)
    start = time.monotonic()
    deadline = start + GIVE_UP
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_), [], [], every)
        for s in readable:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            received[s] += chunk
            if not chunk:
                open_.discard(s)
        for s in list(open_) if time.monotonic() - start < stop_after else []:
            try:
                s.send(byte)
            except OSError:
                open_.discard(s)
    for s in socks:
        s.close()
    assert not open_, f"{len(open_)} trickling connections still open after {GIVE_UP:.0f} s"
    return received


def test_trickled_bodies_time_out(in_thread_server, model) -> None:
    limits = Limits(body_timeout=3.0, body_idle_timeout=2.0)
    url = in_thread_server(create_app(model, limits=limits))
    socks = [connect(url) for _ in range(20)]
    for s in socks:
        s.sendall(request_head(100_000) + f"--{BOUNDARY}\r\n".encode())
    for raw in trickle(socks, b"a", every=0.5, stop_after=2.0).values():  # alive by the idle rule until then
        status, body = parse(raw)
        assert status == 408 and body["error"]["code"] == "timeout", raw
        assert "did not arrive in time" in body["error"]["message"]
    assert post(url, "/v1/landmarks", ASTRONAUT).status_code == 200


def test_trickled_request_heads_time_out(in_thread_server, model) -> None:
    url = in_thread_server(create_app(model, limits=Limits(header_timeout=2.0)))
    socks = [connect(url) for _ in range(20)]
    for s in socks:
        s.sendall(b"POST /v1/landmarks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    for raw in trickle(socks, b"a", every=0.5, stop_after=1.5).values():
        status, body = parse(raw)
        assert status == 408 and body["error"]["code"] == "timeout", raw
    silent = connect(url)  # a connection that never says anything is closed too, without an answer
    silent.settimeout(GIVE_UP)
    assert silent.recv(100) == b""
    silent.close()


def test_connections_over_the_cap_get_503_json(in_thread_server, model) -> None:
    url = in_thread_server(create_app(model, limits=Limits(max_connections=4)))
    idle = [connect(url) for _ in range(4)]
    time.sleep(0.3)  # let the server accept them
    for _ in range(3):
        status, body = parse(read_all(connect(url)))
        assert status == 503 and body["error"]["code"] == "busy", body
    for s in idle:
        s.close()
    deadline = time.monotonic() + GIVE_UP
    while True:  # the server notices the closed connections, then serves again
        r = post(url, "/v1/landmarks", ASTRONAUT)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200, r.text


def read_all(s: socket.socket) -> bytes:
    raw = b""
    while chunk := s.recv(65536):
        raw += chunk
    s.close()
    return raw


def test_oversized_request_heads_get_json_errors(server: str) -> None:
    whole = connect(server)  # all at once: the service's own check
    whole.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    status, body = parse(read_all(whole))
    assert status == 431 and body["error"]["code"] == "headers_too_large", body
    endless = connect(server)  # a head that never ends: the HTTP parser's buffer limit
    endless.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000)
    status, body = parse(read_all(endless))
    assert status == 400 and body["error"]["code"] == "bad_request", body
    assert httpx.get(f"{server}/healthz").status_code == 200


class CountingModel(SlowModel):
    """The real model, slowed down, counting the detections it was asked for."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.calls = 0
        self.guard = threading.Lock()

    def detect(self, image):
        with self.guard:
            self.calls += 1
        return super().detect(image)


def wait_for(url: str, check, what: str) -> dict:
    deadline = time.monotonic() + GIVE_UP
    while True:
        health = httpx.get(f"{url}/healthz").json()
        if check(health):
            return health
        assert time.monotonic() < deadline, f"{what}: {health}"
        time.sleep(0.1)


def test_work_for_disconnected_clients_is_skipped(in_thread_server) -> None:
    model = CountingModel(resolve_model(None))
    url = in_thread_server(create_app(model, limits=Limits(workers=1)))
    body = multipart(ASTRONAUT)
    socks = [connect(url) for _ in range(8)]
    for s in socks:
        s.sendall(request_head(len(body)) + body)
    wait_for(url, lambda h: h["pending"] == 8, "all eight requests admitted")
    for s in socks:  # every client gives up while the first job runs
        s.close()
    health = wait_for(url, lambda h: h["pending"] == 0, "abandoned requests still pending")
    assert model.calls <= 2, f"{model.calls} detections ran for clients that had gone"
    assert health["requests"]["abandoned"] >= 6, health
    r = post(url, "/v1/landmarks", ASTRONAUT)  # and the service goes on
    assert r.status_code == 200 and len(r.json()["faces"]) == 1


def test_guard_refusals_are_json(server: str) -> None:
    """Refusals made before the app sees the request (size, busy) keep the JSON shape of every other error."""
    s = connect(server)  # a declared length over the limit is refused before any body byte is read
    s.sendall(request_head(11 * 1024 * 1024))
    status, body = parse(read_all(s))
    assert status == 413 and body["error"]["code"] == "too_large"
    assert_error(httpx.post(f"{server}/v1/landmarks", files={"image": ("a.jpg", b"")}), 400, "empty_file")


def test_request_bodies_are_admitted_by_the_memory_they_hold(in_thread_server) -> None:
    """Six concurrent ~470 KB uploads against a body budget that holds two: they queue, none is lost or refused."""
    limits = Limits(body_budget_bytes=1_300_000, workers=2)
    url = in_thread_server(create_app(SlowModel(resolve_model(None)), limits=limits))
    photo = Image.open(io.BytesIO(ASTRONAUT)).convert("RGB")
    noisy = np.asarray(photo).astype(np.int16) + np.random.default_rng(0).integers(-3, 4, (512, 512, 3))
    upload = png_bytes(Image.fromarray(noisy.clip(0, 255).astype(np.uint8)))
    assert 2 * len(upload) < limits.body_budget_bytes < 3 * len(upload)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: post(url, "/v1/landmarks", upload, "noisy.png"), range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text[:200] for a in answers]
    assert all(len(a.json()["faces"]) == 1 for a in answers)
    memory = httpx.get(f"{url}/healthz").json()["memory"]
    assert 0 < memory["body_budget_peak"] <= limits.body_budget_bytes and memory["body_budget_used"] == 0
