"""Checkpoints: what a training run writes and how it is read back; torch only (no augmentation, no data loading).

A checkpoint carries the model's name and arguments, its weights, the run's
config, the point scheme and the input normalisation, so it alone is enough
to evaluate or export it. ``last.pt`` also carries what resuming needs: the
optimiser, scheduler and every random state. Writes are atomic; reads use
``torch.load(weights_only=True)``, which cannot run code from a file.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from facepoints.errors import UserError
from facepoints.models import build_model
from facepoints.schemes import PointScheme, scheme_from_dict

if TYPE_CHECKING:
    from facepoints.recipe import TrainConfig

PAYLOAD_KEYS = ("model_name", "model_kwargs", "state_dict", "config", "scheme",
                "normalisation")  # "conventions" is newer


class CheckpointError(UserError):
    """A file that is not a readable facepoints checkpoint."""


def atomic_save(obj: Any, path: Path) -> None:
    """Write then rename, so a run killed mid-write never leaves a corrupt checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a checkpoint file, loaded safely; a missing or foreign file is a one-line ``CheckpointError``."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"no checkpoint file {p}" + (" (it is a folder)" if p.is_dir() else ""))
    if p.suffix.lower() == ".onnx":
        raise CheckpointError(f"{p} is an exported ONNX model, not a training checkpoint: pass the .pt that "
                              "'facepoints train' wrote (or use the .onnx itself as --model)")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises many types for foreign files
        # torch's own message suggests weights_only=False, which would run the file's code: not shown
        raise CheckpointError(f"{p} is not a facepoints checkpoint: it does not read as the weights-only torch "
                              f"file that 'facepoints train' writes ({type(e).__name__})") from None
    missing = [k for k in PAYLOAD_KEYS if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise CheckpointError(f"{p} is not a facepoints checkpoint: no {missing}")
    return ck


def checkpoint_payload(model: nn.Module, cfg: TrainConfig, scheme: PointScheme, **extra: Any) -> dict[str, Any]:
    m = cfg.model
    return {
        "model_name": m.name,
        "model_kwargs": dict(m.kwargs),
        "state_dict": model.state_dict(),
        "config": asdict(cfg),
        "scheme": scheme.to_dict(),
        "conventions": list(cfg.data.conventions),
        "normalisation": {"input_size": m.input_size, "channels": m.channels, "context": m.context,
                          "pixels": "uint8/255 -> [0,1]", "points": "(crop_px + 0.5) / input_size"},
        **extra,
    }


def load_scheme_dict(d: dict) -> PointScheme:
    return scheme_from_dict(d)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a checkpoint alone (architecture, scheme and normalisation are inside)."""
    ck = read_checkpoint(path)
    norm = ck["normalisation"]
    scheme = load_scheme_dict(ck["scheme"])
    model = build_model(ck["model_name"], scheme.num_points, norm["input_size"], norm["channels"], **ck["model_kwargs"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck


def init_weights(model: nn.Module, path: str | Path, progress: bool) -> None:
    """Copy every tensor whose name and shape match; heads for another point count start fresh."""
    state = read_checkpoint(path)["state_dict"]
    own = model.state_dict()
    taken = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(taken, strict=False)
    if progress:
        print(f"initialised {len(taken)}/{len(own)} tensors from {path}")


def global_rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's global random states, in types ``weights_only`` loading accepts."""
    np_state = np.random.get_state(legacy=False)
    np_state["state"] = {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                         "pos": int(np_state["state"]["pos"])}
    return {"python": random.getstate(), "numpy": np_state, "torch": torch.get_rng_state()}


def restore_global_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": np_state["state"]["key"].numpy().astype(np.uint32), "pos": np_state["state"]["pos"]}
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
