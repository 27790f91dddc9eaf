"""The model card: the JSON beside every shipped ``.onnx`` model.

Export writes it, the runtime reads it, ``facepoints models`` lists it and the
regression tests compare a model with the figures it records. One type keeps
those four readers from drifting apart. Torch-free: the runtime imports it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


class CardError(ValueError):
    """A model card is missing, unreadable or lacks what inference needs."""


@dataclass
class ModelCard:
    """What a landmark model needs at run time, and what it was measured to do.

    ``conventions`` maps each annotation convention the model learned to the
    (K, 2) shift, in normalised crop units, from its default output to that
    convention (see models.HeatmapNet); the first entry is the default (zeros).
    ``point_offset`` is the default convention's own (K, 2) offset: an
    annotators' habit that does not mirror, so flip averaging takes it out of
    the mirrored crop's answer before mapping that answer back.
    ``metrics`` holds, per test set, the figures measured on the shipped file
    with the runtime versions in ``measured_with``; CI recomputes them.
    """

    name: str
    scheme: dict[str, Any]
    input_size: int
    channels: int
    context: float
    model: str = ""
    scores: str = "per-point confidence"
    box: str = ""
    provenance: str = ""
    selection: str = ""  # which faces chose the checkpoint (never a test set)
    training_data: list[str] = field(default_factory=list)
    licence: str = ""
    precision: str = "float32"
    conventions: dict[str, list[list[float]]] = field(default_factory=dict)
    point_offset: list[list[float]] = field(default_factory=list)  # the default output's own learned offset
    score_calibration: dict[str, Any] = field(default_factory=dict)  # raw score -> P(point within 5 % of eye distance)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    measured_with: dict[str, str] = field(default_factory=dict)
    retrain: str = ""  # the commands that rebuild this file from scratch

    def __post_init__(self) -> None:
        try:
            self.input_size, self.channels, self.context = int(self.input_size), int(self.channels), float(self.context)
        except (TypeError, ValueError) as e:
            raise CardError(f"model card {self.name!r}: bad input_size/channels/context ({e})") from None
        if self.input_size <= 0 or self.channels not in (1, 3) or not self.context > 0:
            raise CardError(f"model card {self.name!r}: need input_size > 0, channels 1 or 3, context > 0")
        if not isinstance(self.scheme, dict):
            raise CardError(f"model card {self.name!r}: scheme must be an object")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "model card") -> ModelCard:
        if not isinstance(data, dict):
            raise CardError(f"{where} must hold a JSON object")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("scheme", "input_size", "channels", "context") if k not in data]
        if missing:
            raise CardError(f"{where} lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known} | {"name": data.get("name", Path(where).stem)})

    @classmethod
    def for_model(cls, onnx_path: str | Path) -> ModelCard:
        """The card beside a model file (same stem, ``.json``)."""
        side = card_path(onnx_path)
        if not side.is_file():
            raise CardError(
                f"model {onnx_path} has no sidecar {side.name} (its model card) beside it; the card holds the point "
                "scheme and crop settings, without which the model's output cannot be mapped back to the image"
            )
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CardError(f"cannot read model card {side}: {e}") from None
        return cls.from_dict(data, str(side))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, onnx_path: str | Path) -> Path:
        side = card_path(onnx_path)
        side.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return side


def card_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".json")
