"""The face verifier at run time: one more look at each detection (onnxruntime, no torch).

The CNN detector proposes candidates down to a low score; the verifier cuts
each one out through the landmark model's crop path and scores it alone. The
detection's final score combines both (``combine``), and the detector's
threshold applies to that. How they combine and the threshold are chosen on
held-out photos (``benchmarks/verifier.py``) and written into the detector card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepoints.detectors.base import DetectorError, onnx_session
from facepoints.geometry import prepare_input

VERIFIER_FORMAT = "facepoints-verifier/1"


def combine(detector: np.ndarray, verifier: np.ndarray, weight: float) -> np.ndarray:
    """Weighted geometric mean: ``weight`` 1 trusts the verifier alone, 0 the detector alone."""
    d = np.clip(np.asarray(detector, dtype=np.float64), 1e-9, 1.0)
    v = np.clip(np.asarray(verifier, dtype=np.float64), 1e-9, 1.0)
    return np.exp((1.0 - weight) * np.log(d) + weight * np.log(v))


def candidate_floor(threshold: float, weight: float, trained_floor: float) -> float:
    """The lowest detector score that a perfect verifier score (1) could lift to ``threshold``: candidates below
    cannot pass, so they are not verified; never below the scores the verifier was trained on."""
    reach = threshold ** (1.0 / (1.0 - weight)) if weight < 1.0 else 0.0
    return max(trained_floor, reach)


@dataclass
class FaceVerifier:
    """Face probability of each box in an image, from the crop around it."""

    model: str | Path
    threads: int | None = None
    _session: Any = field(default=None, init=False, repr=False, compare=False)
    meta: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        path = Path(self.model)
        side = path.with_suffix(".json")
        if not path.is_file() or not side.is_file():
            raise DetectorError(f"no face verifier {path} (with its card {side.name}); train and export one with "
                                "'facepoints train-verifier' and 'facepoints export-verifier'")
        self.meta = json.loads(side.read_text(encoding="utf-8"))
        if self.meta.get("format") != VERIFIER_FORMAT:
            raise DetectorError(f"{side}: not a face verifier card (format {self.meta.get('format')!r})")
        self._session = onnx_session(path, self.threads)

    def probabilities(self, image_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N,) probability that each box (x0, y0, x1, y1, image pixels) is a face."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            return np.zeros(0)
        size, context = int(self.meta["input_size"]), float(self.meta["context"])
        x = np.stack([prepare_input(image_rgb, b, size, context, 3)[0] for b in boxes])
        return self._session.run(["face"], {"image": x})[0].astype(np.float64)
