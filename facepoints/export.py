"""Checkpoint -> ONNX + sidecar JSON, the only form inference uses (no torch at run time)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facepoints.card import ModelCard
from facepoints.checkpoint import load_checkpoint, read_checkpoint
from facepoints.config import display_path
from facepoints.datasets import load_dataset
from facepoints.geometry import prepare_input

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


def convention_shifts(ck: dict[str, Any]) -> dict[str, list[list[float]]]:
    """Each learned convention's shift from the default output, in normalised crop units (models.HeatmapNet)."""
    names = ck.get("conventions") or []
    table = ck["state_dict"].get("point_offset")
    if len(names) < 2 or table is None or table.ndim != 3:
        return {}
    return {n: (table[i] - table[0]).tolist() for i, n in enumerate(names)}


def point_offset(ck: dict[str, Any]) -> list[list[float]]:
    """The default output's learned (K, 2) offset (normalised crop units), or [] for a model without one."""
    table = ck["state_dict"].get("point_offset")
    if table is None:
        return []
    return (table[0] if table.ndim == 3 else table).tolist()


def retrain_command(ck: dict[str, Any], name: str, int8: bool = False) -> str:
    """The commands that rebuild a shipped file from its recipe (configs/<run name>.yaml)."""
    run = ck["config"].get("name") or name
    return (f"facepoints train configs/{run}.yaml && facepoints export runs/{run}/best.pt{' --int8' if int8 else ''} "
            f"--out facepoints/weights/{name}.onnx --name {name}")


def selection(ck: dict[str, Any]) -> str:
    data = ck["config"]["data"]
    if data.get("val"):
        return "best validation NME on " + ", ".join(display_path(d["path"]) for d in data["val"])
    return (f"best validation NME on {100 * data.get('val_fraction', 0.1):.0f} % of the training people and photos, "
            "held out by name")


def sidecar(ck: dict[str, Any], name: str, metrics: dict[str, Any] | None = None, int8: bool = False) -> ModelCard:
    norm = ck["normalisation"]
    return ModelCard(
        name=name, model=ck["model_name"], scheme=ck["scheme"], input_size=int(norm["input_size"]),
        channels=int(norm["channels"]), context=float(norm["context"]),
        scores="per-point confidence" if ck["model_name"] != "baseline" else "none (constant 1.0)",
        box=box_convention(ck),
        provenance=f"facepoints run {ck['config'].get('name')}, epoch {ck.get('epoch')}, "
                   f"validation NME {100 * float(ck.get('val_nme', float('nan'))):.2f}%",
        selection=selection(ck), training_data=[display_path(d["path"]) for d in ck["config"]["data"]["train"]],
        licence=DATA_NOTICE, conventions=convention_shifts(ck), point_offset=point_offset(ck), metrics=metrics or {},
        retrain=retrain_command(ck, name, int8),
    )


def export_onnx(checkpoint: str | Path, out: str | Path, *, name: str | None = None,
                metrics: dict[str, Any] | None = None, opset: int = 17, int8: bool = False) -> Path:
    """Export a checkpoint; writes ``out`` (.onnx) and the sidecar ``out`` with ``.json``.

    ``int8``: the float graph is the first step of an int8 export (the card's retrain line says so).
    """
    model, ck = load_checkpoint(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    norm = ck["normalisation"]
    export_graph(model, out, norm["channels"], norm["input_size"], opset)
    sidecar(ck, name or out.stem, metrics, int8).write(out)
    return out


def export_graph(model: nn.Module, out: Path, channels: int, input_size: int, opset: int = 17) -> Path:
    """The runtime's graph of a landmark network, image (N, C, S, S) -> points, scores; no card (a design timed
    before training, ``benchmarks/landmark_variants.py``, has none)."""
    x = torch.rand(2, channels, input_size, input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _OnnxHead(model).eval(), (x,), str(out), input_names=["image"], output_names=["points", "scores"],
            dynamic_axes={"image": {0: "batch"}, "points": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    constant_flatten_shapes(out)
    return out


def constant_flatten_shapes(path: Path) -> int:
    """Rewrite each ``Reshape(x, Concat(Slice(Shape(x), 0, k), tail))`` (torch's ``flatten`` under a dynamic
    batch) as ``Reshape(x, [0] * k + tail)``: ONNX's 0 copies the input's dimension, so the answers are the
    same bit for bit, without three shape ops per flatten at run time (~2 % of the network's time).
    Returns how many were rewritten; the file is saved only if any was."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    made = {o: n for n in graph.node for o in n.output}
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consts |= {n.output[0]: numpy_helper.to_array(a.t) for n in graph.node if n.op_type == "Constant"
               for a in n.attribute if a.name == "value"}
    rewritten = 0
    for node in graph.node:
        fixed = _flatten_shape(node, made, consts) if node.op_type == "Reshape" else None
        if fixed is not None:
            graph.initializer.append(numpy_helper.from_array(fixed, node.name + "/constant_shape"))
            node.input[1] = node.name + "/constant_shape"
            rewritten += 1
    if rewritten:
        _drop_unread(graph)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return rewritten


def _flatten_shape(reshape, made: dict, consts: dict) -> np.ndarray | None:
    """The constant shape of a flatten-like Reshape (see ``constant_flatten_shapes``), or None."""
    concat = made.get(reshape.input[1])
    sliced = made.get(concat.input[0]) if concat is not None and concat.op_type == "Concat" else None
    shape = made.get(sliced.input[0]) if sliced is not None and sliced.op_type == "Slice" else None
    if shape is None or shape.op_type != "Shape" or shape.input[0] != reshape.input[0] or len(concat.input) != 2:
        return None
    if len(sliced.input) > 4 or len(shape.attribute):  # steps, or Shape's start/end: not torch's flatten
        return None
    start, end, tail = (consts.get(n) for n in (sliced.input[1], sliced.input[2], concat.input[1]))
    axes = consts.get(sliced.input[3]) if len(sliced.input) > 3 else np.zeros(1)
    if any(v is None or v.size != 1 for v in (start, end, axes)) or tail is None:
        return None
    if int(start.reshape(-1)[0]) != 0 or int(axes.reshape(-1)[0]) != 0:
        return None
    return np.array([0] * int(end.reshape(-1)[0]) + tail.reshape(-1).tolist(), np.int64)


def _drop_unread(graph) -> None:
    """Remove nodes and initializers whose outputs nothing reads any more (dead shape arithmetic)."""
    while True:
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not set(n.output) & read]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    read = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)


def head_nodes(graph) -> set[str]:
    """Nodes from the heatmap convolutions on: heatmap logits, softmax and soft-argmax stay float.

    Rounding heatmap logits to 8 bits shifts soft-argmax by pixels, while the
    backbone and decoder lose nothing measurable, so only they are quantised.
    The heatmaps are the last convolutions that feed a Softmax; the score map's
    conv (pooled under them) is quantised with the decoder. A net without a
    Softmax keeps all its last convolutions float.
    """
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def downstream(node) -> list:
        seen, todo, out = set(), [node], []
        while todo:
            n = todo.pop()
            for o in n.output:
                for c in consumers.get(o, []):
                    if c.name not in seen:
                        seen.add(c.name)
                        out.append(c)
                        todo.append(c)
        return out

    heads = [n for n in graph.node if n.op_type == "Conv" and not any(d.op_type == "Conv" for d in downstream(n))]
    heatmaps = [h for h in heads if any(d.op_type == "Softmax" for d in downstream(h))]
    return {n.name for h in heatmaps or heads for n in [h, *downstream(h)]}


def stem_nodes(graph) -> set[str]:
    """The convolution that reads the image: with three input channels, int8 buys it nothing.

    onnxruntime's int8 kernels need many input channels to pay; on 3 they are
    ~2x slower than float (benchmarks/results/quantization.md), and the input's
    own QuantizeLinear and layout change go away with it.
    """
    image = graph.input[0].name
    return {n.name for n in graph.node if n.op_type == "Conv" and n.input[0] == image}


def calibration_crops(checkpoint: str | Path, n: int = 200, dataset: str | None = None, seed: int = 0) -> np.ndarray:
    """Real face crops, as the model sees them, to set the int8 ranges (from the run's training data by default)."""
    ck = read_checkpoint(checkpoint)
    norm = ck["normalisation"]
    path = dataset or ck["config"]["data"]["train"][0]["path"]
    samples, _ = load_dataset(path, progress=False)
    if not samples:
        raise ValueError(f"no usable faces in {path} to calibrate int8 ranges with")
    pick = np.random.default_rng(seed).permutation(len(samples))[:n]
    crops = [prepare_input(samples[i].image, samples[i].crop_box, norm["input_size"], norm["context"],
                           norm["channels"])[0] for i in pick]
    return np.stack(crops).astype(np.float32)


def quantize_onnx(fp32_path: str | Path, out: str | Path, crops: np.ndarray | Sequence[np.ndarray],
                  float_stem: bool = True, reduce_range: bool = True) -> Path:
    """Static int8 (QDQ, per-channel weights) of everything but the head (and the stem, with ``float_stem``):
    ~1.5x faster than float on CPUs with VNNI. ``crops``: (C, H, W) inputs, or (1, C, H, W) ones of any sizes.

    ``reduce_range`` keeps weights within 7 bits. Without VNNI, onnxruntime's x86 kernels add pairs of
    uint8 x int8 products in 16 bits, which saturate with 8-bit weights: the same file then gives other
    points on an AVX2-only CPU than on a VNNI one. With 7 bits the pair sums fit, so every CPU computes
    the same integers."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"image": c[None] if c.ndim == 3 else c} for c in crops])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre)).graph
        keep_float = head_nodes(graph) | (stem_nodes(graph) if float_stem else set())
        quantize_static(
            str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce_range,
            # Relu too, or a Q/DQ pair splits every Conv + Relu
            op_types_to_quantize=["Conv", "Add", "Relu"], nodes_to_exclude=sorted(keep_float),
        )
    return out


def export_int8(checkpoint: str | Path, out: str | Path, *, name: str | None = None,
                calibration: str | None = None, n_calibration: int = 200, crops: np.ndarray | None = None) -> Path:
    """Export float ONNX, then quantise it in place of ``out``; the sidecar records the precision.

    ``crops`` (from ``calibration_crops``) saves reading the dataset again when the caller has them.
    """
    import tempfile

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if crops is None:
        crops = calibration_crops(checkpoint, n_calibration, calibration)
    n_calibration = len(crops)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(checkpoint, Path(tmp) / "fp32.onnx", name=name or out.stem, int8=True)
        quantize_onnx(fp32, out, crops)
        card = ModelCard.for_model(fp32)
    card.precision = (f"int8 backbone and decoder (static QDQ, per-channel 7-bit weights, {n_calibration} calibration "
                      f"faces from {calibration or 'the training data'}); float stem, head and soft-argmax")
    card.write(out)
    return out


def compare_with_onnx(checkpoint: str | Path, onnx_path: str | Path, n: int = 4, seed: int = 0,
                      inputs: np.ndarray | None = None) -> float:
    """Largest |torch - onnxruntime| difference in input pixels, over ``inputs`` or random crops."""
    import onnxruntime as ort

    model, ck = load_checkpoint(checkpoint)
    norm = ck["normalisation"]
    x = inputs if inputs is not None else np.random.default_rng(seed).random(
        (n, norm["channels"], norm["input_size"], norm["input_size"]), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))["points"].numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["points"], {"image": x})[0]
    return float(np.abs(ref - got).max() * norm["input_size"])
