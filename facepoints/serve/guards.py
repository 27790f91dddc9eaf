"""Connection and request-body guards: every slow, oversized or abandoned request ends, with a JSON answer.

uvicorn starts its keep-alive timer only after a response and restarts it on
every byte, so a client that trickles a request head, or a body, held a
connection forever (1,000 of them stayed open). ``guarded_protocol`` gives the
head a deadline and caps open connections; ``BodyGuard`` gives the body a
size limit, a deadline and an idle timeout, and admits bodies by the memory
they will hold; ``watch_disconnect`` stops work whose client has gone.
"""

import json
import threading
import time
from typing import Any

import anyio
import h11
from starlette.requests import Request

from facepoints.serve.common import MB, ApiError, Limits, error_body
from facepoints.serve.memory import ByteBudget

SPOOL_BYTES = 1 * MB  # Starlette keeps a multipart file part in memory up to this size, then on disk
MULTIPART_OVERHEAD = 64 * 1024  # boundary lines and part headers around the file in a multipart body
REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}


def json_response_bytes(status: int, body: dict) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for refusals below the ASGI app."""
    raw = json.dumps(body).encode()
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(raw)}\r\nconnection: close\r\n\r\n")
    return head.encode() + raw


async def send_json(send, status: int, body: dict) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": raw})


class BodyGuard:
    """Refuses request bodies that are too large, too slow or that do not fit the memory budget.

    FastAPI turns any error while parsing a form into a generic 400, so the
    refusal is remembered here and replaces whatever the app answers.
    """

    def __init__(self, app, limits: Limits, budget: ByteBudget) -> None:
        self.app, self.limits, self.budget = app, limits, budget
        self.max_bytes = limits.max_upload_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and sum(len(k) + len(v) for k, v in scope["headers"]) > self.limits.max_header_bytes:
            # uvicorn's own limit only catches heads that arrive in pieces
            await send_json(send, 431, error_body("headers_too_large", "the request headers are longer than "
                                                                       f"{self.limits.max_header_bytes} bytes"))
            return
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        too_large = error_body("too_large", f"the upload is larger than the limit of {self.limits.max_upload_bytes} "
                                            "bytes")
        length = dict(scope.get("headers") or []).get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > self.max_bytes:
            await send_json(send, 413, too_large)
            return
        in_memory = min(declared if declared is not None else self.max_bytes, SPOOL_BYTES + MULTIPART_OVERHEAD)
        taken = None
        with anyio.move_on_after(self.limits.body_timeout):
            taken = await self.budget.acquire(in_memory)
        if taken is None:
            await send_json(send, 503, error_body("busy", "too many uploads in progress; try again shortly"))
            return
        try:
            await self._guarded(scope, receive, send, too_large)
        finally:
            self.budget.release(taken)

    async def _guarded(self, scope, receive, send, too_large: dict) -> None:
        limits = self.limits
        deadline = time.monotonic() + limits.body_timeout
        seen, done = 0, False
        refusal: list[tuple[int, dict]] = []
        started = False

        async def limited_receive() -> dict:
            nonlocal seen, done
            if done:
                return await receive()
            left = deadline - time.monotonic()
            try:
                with anyio.fail_after(max(0.0, min(limits.body_idle_timeout, left))):
                    msg = await receive()
            except TimeoutError:
                refusal.append((408, error_body(
                    "timeout", f"the request body did not arrive in time (at most {limits.body_timeout:g} s in all, "
                               f"{limits.body_idle_timeout:g} s without data); send it again on a faster link")))
                raise ApiError(408, "timeout", "request body timed out") from None
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                done = not msg.get("more_body", False)
                if seen > self.max_bytes:
                    refusal.append((413, too_large))
                    raise ApiError(413, "too_large", "too large")
            else:
                done = True
            return msg

        async def guarded_send(msg) -> None:
            nonlocal started
            if refusal:
                if not started:
                    started = True
                    await send_json(send, *refusal[0])
                return
            started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except ApiError:
            if not refusal:
                raise
        if refusal and not started:
            await send_json(send, *refusal[0])


async def watch_disconnect(request: Request, stop: threading.Event, scope: anyio.CancelScope) -> None:
    """Wait for the client to go away (the body has been read), then stop the work done for it."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            stop.set()
            scope.cancel()
            return


def guarded_protocol(limits: Limits) -> type:
    """uvicorn's h11 protocol with a deadline for request heads, a cap on connections and JSON refusals."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: Any = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self._refuse(503, error_body("busy", f"more than {limits.max_connections} open connections; "
                                                     "try again shortly"))
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(limits.header_timeout, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if not self.conn.trailing_data[0]:  # idle between requests: just close
                self.transport.close()
                return
            self._refuse(408, error_body("timeout", f"the request head did not arrive within "
                                                    f"{limits.header_timeout:g} s"))

        def _refuse(self, status: int, body: dict) -> None:
            self._disarm()
            self.transport.write(json_response_bytes(status, body))
            self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            what = "the request line and headers are malformed or longer than " f"{limits.max_header_bytes} bytes"
            self._refuse(400, error_body("bad_request", f"{what} ({msg})"))

    return GuardedH11Protocol
