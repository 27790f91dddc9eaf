"""Checkpoint -> ONNX + sidecar JSON, the only form inference uses (no torch at run time)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facepoints.train import load_checkpoint

DATA_NOTICE = (
    "Weights trained by the facepoints project from scratch on research datasets "
    "(YouTube Faces frames as annotated for the Udacity facial keypoints set; 300-W "
    "HELEN/AFW). These datasets are for research use; check their terms before "
    "commercial use of the weights."
)


class _OnnxHead(nn.Module):
    """Fixes the runtime contract: image -> (points, scores), scores ones when a model has none."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(image)
        points = out["points"]
        scores = out.get("scores")
        if scores is None:
            scores = torch.ones_like(points[..., 0])
        return points, scores


def box_convention(ck: dict[str, Any]) -> str:
    """Which box ``landmarks`` expects; converted-scheme models keep the 68-point box of their training data."""
    scheme = ck["scheme"]
    if "ibug68" in (scheme.get("derive") or {}) and scheme["name"] != "ibug68":
        return "tight box of the face's 68 iBUG points (training data converted from ibug68)"
    return f"tight box of the face's {len(scheme['points'])} {scheme['name']} points"


def sidecar(ck: dict[str, Any], name: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    norm = ck["normalisation"]
    return {
        "name": name,
        "model": ck["model_name"],
        "scheme": ck["scheme"],
        "input_size": int(norm["input_size"]),
        "channels": int(norm["channels"]),
        "context": float(norm["context"]),
        "scores": "per-point confidence" if ck["model_name"] != "baseline" else "none (constant 1.0)",
        "box": box_convention(ck),
        "provenance": f"facepoints run {ck['config'].get('name')}, epoch {ck.get('epoch')}, "
                      f"validation NME {100 * float(ck.get('val_nme', float('nan'))):.2f}%",
        "training_data": [d["path"] for d in ck["config"]["data"]["train"]],
        "licence": DATA_NOTICE,
        "metrics": metrics or {},
    }


def export_onnx(checkpoint: str | Path, out: str | Path, *, name: str | None = None,
                metrics: dict[str, Any] | None = None, opset: int = 17) -> Path:
    """Export a checkpoint; writes ``out`` (.onnx) and the sidecar ``out`` with ``.json``."""
    model, ck = load_checkpoint(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    norm = ck["normalisation"]
    x = torch.rand(2, norm["channels"], norm["input_size"], norm["input_size"])
    head = _OnnxHead(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            head, (x,), str(out), input_names=["image"], output_names=["points", "scores"],
            dynamic_axes={"image": {0: "batch"}, "points": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    meta = sidecar(ck, name or out.stem, metrics)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out


def compare_with_onnx(checkpoint: str | Path, onnx_path: str | Path, n: int = 4, seed: int = 0) -> float:
    """Largest |torch - onnxruntime| difference in input pixels over random crops."""
    import onnxruntime as ort

    model, ck = load_checkpoint(checkpoint)
    norm = ck["normalisation"]
    x = np.random.default_rng(seed).random((n, norm["channels"], norm["input_size"], norm["input_size"]), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))["points"].numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["points"], {"image": x})[0]
    return float(np.abs(ref - got).max() * norm["input_size"])
