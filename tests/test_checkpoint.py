"""Checkpoints: atomic writes, safe reads that name what is wrong, a model rebuilt from the file alone, RNG states."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from facepoints.checkpoint import (
    CheckpointError,
    atomic_save,
    checkpoint_payload,
    global_rng_state,
    load_checkpoint,
    read_checkpoint,
    restore_global_rng,
)
from facepoints.errors import UserError
from facepoints.models import build_model
from facepoints.recipe import TrainConfig
from facepoints.schemes import load_scheme


def _saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    cfg = TrainConfig()
    cfg.model.input_size = 32
    cfg.model.kwargs = {"widths": [8, 16], "hidden": [32]}
    model = build_model("baseline", 68, 32, 1, **cfg.model.kwargs)
    path = tmp_path / "ck.pt"
    atomic_save(checkpoint_payload(model, cfg, load_scheme("ibug68"), epoch=3), path)
    return path, model


def test_a_checkpoint_alone_rebuilds_its_model(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))  # written then renamed
    again, ck = load_checkpoint(path)
    x = torch.rand(2, 1, 32, 32)
    model.eval()
    assert torch.equal(again(x)["points"], model(x)["points"])
    assert ck["epoch"] == 3 and ck["scheme"]["name"] == "ibug68" and ck["normalisation"]["input_size"] == 32


def test_foreign_or_missing_files_are_refused_in_one_line(tmp_path: Path) -> None:
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    not_ours = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, not_ours)
    code = tmp_path / "code.pt"
    torch.save({"model_name": object()}, code)  # a pickled object: weights_only refuses to build it
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    for path, message in ((text, "is not a facepoints checkpoint"), (tmp_path / "nope.pt", "no checkpoint file"),
                          (tmp_path, "it is a folder"), (not_ours, r"no \['model_name'"),
                          (code, "is not a facepoints checkpoint"), (onnx, "is an exported ONNX model")):
        with pytest.raises(CheckpointError, match=message) as e:
            read_checkpoint(path)
        assert isinstance(e.value, UserError) and "\n" not in str(e.value)
        assert "weights_only" not in str(e.value)  # torch's advice to load code is not passed on


def test_global_random_states_survive_a_weights_only_round_trip(tmp_path: Path) -> None:
    torch.save({"rng": global_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    restore_global_rng(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
