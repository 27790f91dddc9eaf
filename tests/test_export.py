from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facepoints.checkpoint import atomic_save, checkpoint_payload, load_checkpoint
from facepoints.export import _OnnxHead, compare_with_onnx, export_onnx
from facepoints.models import build_model
from facepoints.recipe import TrainConfig
from facepoints.schemes import load_scheme


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


def test_flattens_export_with_constant_shapes_and_the_same_answers(tmp_path: Path) -> None:
    """torch's flatten under a dynamic batch exports as Shape -> Slice -> Concat -> Reshape; the export folds it
    to one Reshape with a constant shape (0 = keep that dimension), answering bit for bit the same."""
    import onnx
    import onnxruntime as ort

    from facepoints.export import constant_flatten_shapes

    ck = _checkpoint(tmp_path, "heatmap", 64, 3, widths=[8, 16, 16, 24, 32], depths=[1, 1, 1, 1], decoder=16)
    folded = export_onnx(ck, tmp_path / "folded.onnx")
    ops = [n.op_type for n in onnx.load(str(folded)).graph.node]
    assert "Shape" not in ops and "Concat" not in ops and ops.count("Reshape") == 2
    model, _ = load_checkpoint(ck)
    raw = tmp_path / "raw.onnx"  # the same network straight from torch
    torch.onnx.export(_OnnxHead(model).eval(), (torch.rand(2, 3, 64, 64),), str(raw), input_names=["image"],
                      output_names=["points", "scores"], dynamic_axes={"image": {0: "batch"}, "points": {0: "batch"},
                                                                         "scores": {0: "batch"}},
                      opset_version=17, dynamo=False)
    assert [n.op_type for n in onnx.load(str(raw)).graph.node].count("Shape") == 2
    x = np.random.default_rng(0).random((5, 3, 64, 64), dtype=np.float32)
    a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"image": x})
            for p in (raw, folded))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert constant_flatten_shapes(folded) == 0  # nothing left to fold


def test_int8_export_quantises_the_backbone_keeps_the_head_float_and_stays_close(tmp_path: Path) -> None:
    import onnx

    from facepoints.datasets import write_pts
    from facepoints.export import export_int8, head_nodes, stem_nodes
    from tests.conftest import synthetic_face

    data = tmp_path / "faces"
    data.mkdir()
    faces = []
    for i in range(12):
        img, pts = synthetic_face(96, seed=i)
        Image.fromarray(img).save(data / f"f{i}.png")
        write_pts(data / f"f{i}.pts", pts)
        faces.append((img, pts))
    ck = _checkpoint(tmp_path, "heatmap", 64, 3, widths=[8, 16, 16, 24, 32], depths=[1, 1, 1, 1], decoder=16)
    fp32 = export_onnx(ck, tmp_path / "fp32.onnx")
    q = export_int8(ck, tmp_path / "q.onnx", calibration=str(data), n_calibration=12)

    graph = onnx.load(str(q)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 10
    heads = head_nodes(graph)
    head_convs = [n for n in graph.node if n.name in heads and n.op_type == "Conv"]
    assert len(head_convs) == 1  # the heatmap convolution
    made = {o: n for n in graph.node for o in n.output}
    score = [n for n in graph.node if n.op_type == "Conv" and "score" in n.name]  # its map is pooled under them
    assert len(score) == 1 and all(made[i].op_type == "DequantizeLinear" for i in score[0].input[:2])
    assert all(i in {init.name for init in graph.initializer} for n in head_convs for i in n.input[1:])
    assert {"Softmax", "MatMul"} <= {n.op_type for n in graph.node if n.name in heads}
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in graph.node if n.name in heads}
    # the stem stays float: it reads the image itself, not a dequantised copy, with float weights
    stem = [n for n in graph.node if n.name in stem_nodes(graph)]
    weights = {init.name: init for init in graph.initializer}
    assert len(stem) == 1 and weights[stem[0].input[1]].data_type == onnx.TensorProto.FLOAT
    meta = json.loads(q.with_suffix(".json").read_text())
    assert meta["precision"].startswith("int8") and json.loads(fp32.with_suffix(".json").read_text())[
        "precision"] == "float32"

    # closeness of int8 to float is measured on a trained network: test_trained_checkpoint_exports_faithfully


def test_trained_checkpoint_exports_faithfully(tmp_path: Path, real_data: Path) -> None:
    """The shipped checkpoint on real faces: ONNX float32 = torch, and int8 stays within a pixel of float32.

    A random network puts every point at the box centre, where any export
    looks faithful; a trained one spreads them over the face.
    """
    from facepoints.datasets import load_dataset
    from facepoints.export import calibration_crops, export_int8
    from facepoints.geometry import prepare_input
    from facepoints.inference import LandmarkModel

    ck = Path(__file__).resolve().parents[1] / "checkpoints" / "default.pt"
    faces = load_dataset(str(real_data / "300w-68" / "afw"), progress=False)[0][:24]
    crops = np.stack([prepare_input(s.image, s.crop_box, 96, 1.25, 3)[0] for s in faces]).astype(np.float32)
    fp32 = export_onnx(ck, tmp_path / "fp32.onnx")
    assert compare_with_onnx(ck, fp32, inputs=crops) < 1e-3  # pixels of the 96 px crop
    q = export_int8(ck, tmp_path / "q.onnx", crops=calibration_crops(ck, 64))
    a, b = LandmarkModel(fp32, threads=1), LandmarkModel(q, threads=1)
    spread, moved = [], []
    for s in faces:
        pa, pb = a.landmarks(s.image, s.crop_box[None])[0], b.landmarks(s.image, s.crop_box[None])[0]
        d = np.linalg.norm(s.points[36] - s.points[45])
        spread.append(np.ptp(pa[:, 0]) / d)
        moved.append(np.linalg.norm(pa - pb, axis=1).mean() / d)
    assert min(spread) > 1.0  # a trained fit: the points span the face, not the box centre
    assert np.mean(moved) < 0.01  # int8 moves points by under 1 % of the eye distance on average


def test_every_shipped_int8_model_keeps_weights_within_7_bits() -> None:
    """onnxruntime's x86 kernels without VNNI add pairs of uint8 x int8 products in 16 bits: 8-bit weights
    saturate there, and the same file then answers differently on different CPUs (benchmarks/quantization.py)."""
    import onnx
    from onnx import numpy_helper

    from facepoints.card import ModelCard
    from facepoints.inference import available_models, model_dir

    int8 = [n for n in available_models()
            if ModelCard.for_model(model_dir() / f"{n}.onnx").precision.startswith("int8")]
    assert {"accurate", "default", "fast"} <= set(int8)
    for name in int8:
        graph = onnx.load(str(model_dir() / f"{name}.onnx")).graph
        weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
        assert weights, f"{name}: no int8 weights"
        largest = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
        assert 2 * 255 * largest <= 2**15 - 1, f"{name}: int8 weights up to {largest} overflow 16-bit pair sums"
