from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facepoints.export import compare_with_onnx, export_onnx
from facepoints.models import build_model
from facepoints.schemes import load_scheme
from facepoints.train import TrainConfig, atomic_save, checkpoint_payload


def _checkpoint(tmp: Path, name: str, size: int, channels: int, **kwargs) -> Path:
    cfg = TrainConfig(name=f"t-{name}")
    cfg.model.name, cfg.model.input_size, cfg.model.channels, cfg.model.kwargs = name, size, channels, kwargs
    torch.manual_seed(0)
    model = build_model(name, 68, size, channels, **kwargs)
    # non-trivial BatchNorm statistics, so export must fold them correctly
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, channels, size, size))
    model.eval()
    path = tmp / f"{name}.pt"
    atomic_save(checkpoint_payload(model, cfg, load_scheme("ibug68"), epoch=1, val_nme=0.05), path)
    return path


@pytest.mark.parametrize("name,size,channels,kwargs", [
    ("baseline", 32, 1, {"widths": [8, 16], "hidden": [32]}),
    ("heatmap", 64, 3, {"widths": [8, 16, 16, 24, 32], "depths": [1, 1, 1, 1], "decoder": 16}),
])
def test_onnx_matches_torch_within_1e4_px(tmp_path: Path, name: str, size: int, channels: int, kwargs: dict) -> None:
    ck = _checkpoint(tmp_path, name, size, channels, **kwargs)
    onnx_path = export_onnx(ck, tmp_path / "m.onnx", name="tiny")
    assert compare_with_onnx(ck, onnx_path, n=5) < 1e-4
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["name"] == "tiny" and meta["input_size"] == size and meta["channels"] == channels
    assert meta["scheme"]["name"] == "ibug68" and len(meta["scheme"]["points"]) == 68
    assert "research use" in meta["licence"]

    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):  # the batch axis is dynamic
        pts, scores = sess.run(None, {"image": np.random.rand(batch, channels, size, size).astype(np.float32)})
        assert pts.shape == (batch, 68, 2) and scores.shape == (batch, 68)
        assert ((scores >= 0) & (scores <= 1)).all()
