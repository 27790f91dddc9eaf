"""Where ``detect``'s time goes: each onnxruntime network's share, and everything else (decoding the outputs,
crops, NMS, Python).

Knowing the split tells which change could reach a time target: a faster network, or less work around it.
The clock wraps each session's ``run`` on the model's own objects, so it measures exactly the calls ``detect``
makes; unwrap with ``close`` (or use it as a context manager).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def model_sessions(model: Any) -> dict[str, Any]:
    """The onnxruntime sessions a ``LandmarkModel.detect`` runs, by part: the CNN detector's, its verifier's
    (when it has one) and the landmark network's. Other detectors run no onnxruntime session."""
    out = {}
    det = model.detector
    if getattr(det, "_session", None) is not None:
        out["detector network"] = det._session
    if getattr(det, "_verifier", None) is not None:
        out["verifier network"] = det._verifier._session
    out["landmark network"] = model._session
    return out


class SessionClock:
    """Seconds spent in each named session's ``run`` since the last ``reset``."""

    def __init__(self, sessions: dict[str, Any]) -> None:
        self.seconds = dict.fromkeys(sessions, 0.0)
        self._wrapped = []
        for name, sess in sessions.items():
            self._wrapped.append((sess, sess.run))
            sess.run = self._timed(name, sess.run)

    def _timed(self, name: str, run: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0
        return timed

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)

    def close(self) -> None:
        for sess, run in self._wrapped:
            sess.run = run
        self._wrapped = []

    def __enter__(self) -> SessionClock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_ms(model: Any, calls: list[Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Mean ms per call of each network and of the rest, over ``repeats`` rounds of ``calls`` (one per photo)."""
    with SessionClock(model_sessions(model)) as clock:
        for call in calls:
            call()
        clock.reset()
        t0 = time.perf_counter()
        for _ in range(repeats):
            for call in calls:
                call()
        total = time.perf_counter() - t0
        n = repeats * len(calls)
        out = {name: 1000 * s / n for name, s in clock.seconds.items()}
    out["everything else"] = 1000 * total / n - sum(out.values())
    out["total"] = 1000 * total / n
    return out
