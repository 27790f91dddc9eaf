"""benchmarks/session_clock.py: the split of ``detect``'s time that detection.md publishes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from session_clock import SessionClock, model_sessions, split_ms  # noqa: E402

import facepoints  # noqa: E402
from facepoints.cli import sample_image_path  # noqa: E402


def test_the_split_covers_each_network_detect_runs_and_adds_up() -> None:
    model = facepoints.load(threads=1)
    image = model.read(sample_image_path()).rgb
    sessions = model_sessions(model)
    assert set(sessions) == {"detector network", "verifier network", "landmark network"}
    originals = {name: s.run for name, s in sessions.items()}
    split = split_ms(model, [lambda: model.detect(image)], repeats=2)
    parts = [v for k, v in split.items() if k != "total"]
    assert all(v > 0 for v in parts), split
    assert abs(sum(parts) - split["total"]) < 1e-9
    assert split["detector network"] > split["verifier network"]  # the pyramid, twice, against a crop per candidate
    assert {name: s.run for name, s in sessions.items()} == originals  # unwrapped afterwards


def test_the_clock_counts_only_while_wrapped_and_from_the_last_reset() -> None:
    model = facepoints.load(threads=1)
    x = np.zeros((1, model.channels, model.input_size, model.input_size), np.float32)
    with SessionClock({"landmarks": model._session}) as clock:
        model._session.run(None, {"image": x})
        clock.reset()
        assert clock.seconds["landmarks"] == 0.0
        model._session.run(None, {"image": x})
        once = clock.seconds["landmarks"]
        assert once > 0
    model._session.run(None, {"image": x})
    assert clock.seconds["landmarks"] == once


def test_interleaved_timing_gives_each_call_its_own_best_block_in_turn() -> None:
    from speed import interleaved_best_ms

    order: list[int] = []

    def call(i: int, seconds: float):
        def run() -> None:
            order.append(i)
            t = time.perf_counter()
            while time.perf_counter() - t < seconds:
                pass
        return run

    best = interleaved_best_ms([call(0, 0.002), call(1, 0.0002)], calls=2, rounds=3, warmup=1)
    assert best.shape == (2,) and best[0] >= 2.0 and 0.2 <= best[1] < best[0]  # ms per call, not per block
    # one warm-up call each, then blocks of two calls taking turns, round by round
    assert order == [0, 1] + [0, 0, 1, 1] * 3
