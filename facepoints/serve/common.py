"""What every part of the service shares: its limits and the one error type that becomes a JSON 4xx."""

from dataclasses import dataclass
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one request, and all of them together, may cost; every breach is a 4xx with a JSON body, never a crash.

    Memory is bounded by three budgets: decoded pixels (``decode_budget_bytes``,
    reserved per request from the image header before decoding), request
    bodies held in RAM (``body_budget_bytes``; uploads over 1 MB are spooled to
    disk) and the model itself. Time is bounded per phase, so a client that
    trickles bytes cannot hold a connection open.
    """

    max_upload_bytes: int = 10 * MB
    max_pixels: int = 50_000_000  # ~8200 x 6100: larger phone photos exist, decompression bombs are larger still
    max_side: int = 30_000  # OpenCV's warps assert on sides beyond 32767
    max_faces: int = 100  # upper bound of the max_faces option
    workers: int = 2  # CPU jobs at once (decode + detect + draw)
    max_pending: int = 512  # requests admitted at once; beyond this the service answers 503
    work_pixels: int = 16_000_000  # larger photos are decoded reduced to at most this many pixels
    decode_budget_bytes: int = 640 * MB  # decoded pixels of all requests in progress, estimated from headers
    body_budget_bytes: int = 192 * MB  # request bodies held in memory at once
    max_connections: int = 768  # open TCP connections; more are answered 503 and closed
    header_timeout: float = 10.0  # seconds to send a request's head (after connecting or after the last answer)
    body_timeout: float = 60.0  # seconds to send the whole body (10 MB at ~1.4 Mbit/s)
    body_idle_timeout: float = 15.0  # seconds without a body byte
    keep_alive: float = 5.0  # seconds an idle keep-alive connection stays open
    max_header_bytes: int = 16 * 1024  # request line and headers


class ApiError(Exception):
    """A request the service refuses; becomes ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str, **extra: Any) -> dict:
    return {"error": {"code": code, "message": message, **extra}}
