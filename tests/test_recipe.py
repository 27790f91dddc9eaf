"""The shipped recipe's own paths: per-convention offsets with the heatmap regulariser, warm-up + cosine,
``init_from``, ``facepoints export --int8`` from the command line, and checkpoints that never run code."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facepoints.checkpoint import init_weights, load_checkpoint
from facepoints.cli import app
from facepoints.recipe import load_train_config
from facepoints.train import _make_scheduler, train
from tests.training_builders import pts_dataset

ROOT = Path(__file__).resolve().parents[1]
SHIFT_PX = 3.0


def _faces(folder: Path, n: int, shift: float) -> Path:
    """Synthetic faces whose annotators draw the jaw ``shift`` px lower (a shift of every point would be
    invisible: crops follow the annotated box)."""
    return pts_dataset(folder, n, jaw_drop=shift)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run of the default recipe's shape: heatmaps, two conventions, regulariser, warm-up + cosine, flips."""
    tmp = tmp_path_factory.mktemp("recipe")
    a, b = _faces(tmp / "a", 24, 0.0), _faces(tmp / "b", 24, SHIFT_PX)
    overrides = [
        f"data.train=[{{path: {a}, format: ibug-pts, convention: a}}, {{path: {b}, format: ibug-pts, convention: b}}]",
        "data.conventions=[a, b]", "data.val_fraction=0.2", f"out_dir={tmp / 'run'}", "workers=0", "threads=1",
        "model.input_size=48", "model.kwargs={widths: [8, 16, 16, 24, 32], depths: [1, 1, 1, 1], decoder: 16, "
        "point_offset: true}", "optim.epochs=10", "optim.warmup_epochs=1", "optim.batch_size=8", "optim.lr=1e-2",
        "optim.heatmap_weight=1.0", "augment.blur_p=0", "augment.flip=0.5"]
    cfg = load_train_config(ROOT / "configs" / "default.yaml", overrides)
    return train(cfg, progress=False)


def test_a_convention_offset_learns_its_annotators_shift(recipe_run: Path) -> None:
    model, ck = load_checkpoint(recipe_run)
    assert ck["conventions"] == ["a", "b"] and ck["model_kwargs"]["conventions"] == 2
    table = model.offset_table().detach() * 48  # crop pixels
    diff = table[1] - table[0]
    jaw_drop = float(diff[:17, 1].mean() - diff[17:, 1].mean())
    crop_px = SHIFT_PX * 48 / (1.25 * 0.6 * 128)  # the synthetic face's box is ~0.6 x 128 px, context 1.25
    assert jaw_drop > 0.4 * crop_px, f"convention b's jaw offset should point down, got {jaw_drop:.2f} px"
    assert abs(float(diff[:, 0].mean())) < 0.5 * jaw_drop


def test_warmup_then_cosine_schedule() -> None:
    cfg = load_train_config(ROOT / "configs" / "default.yaml", ["optim.epochs=10", "optim.warmup_epochs=2"])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = _make_scheduler(opt, cfg.optim, steps_per_epoch=5)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[30] == pytest.approx(0.5 * (1 + math.cos(math.pi * 20 / 40)))
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01


def test_init_from_copies_matching_tensors_only(recipe_run: Path, tmp_path: Path) -> None:
    data = _faces(tmp_path / "c", 12, 0.0)
    overrides = [f"data.train=[{{path: {data}, format: ibug-pts}}]", "data.scheme=kaggle15", "data.val_fraction=0.25",
                 f"out_dir={tmp_path / 'k'}", "workers=0", "threads=1", "model.input_size=48", "optim.epochs=0",
                 "model.kwargs={widths: [8, 16, 16, 24, 32], depths: [1, 1, 1, 1], decoder: 16, point_offset: true}",
                 f"init_from={recipe_run}"]
    from facepoints.models import build_model

    cfg = load_train_config(ROOT / "configs" / "default.yaml", overrides)
    model = build_model("heatmap", 15, 48, 3, **cfg.model.kwargs)
    fresh_head = model.heatmap.weight.detach().clone()
    init_weights(model, cfg.init_from, progress=False)
    source = torch.load(recipe_run, weights_only=True)["state_dict"]
    assert torch.equal(model.stem[0].weight, source["stem.0.weight"])  # backbone copied
    assert torch.equal(model.heatmap.weight, fresh_head)  # 15-point head keeps its own start


def test_export_int8_from_the_command_line(recipe_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    calib = recipe_run.parent.parent / "a"
    res = CliRunner().invoke(app, ["export", str(recipe_run), "--int8", "--out", str(out), "--name", "tiny",
                                   "--calibration", str(calib)])
    assert res.exit_code == 0, res.output
    import onnx

    from facepoints.card import ModelCard

    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    card = ModelCard.for_model(out)
    assert card.precision.startswith("int8") and list(card.conventions) == ["a", "b"] and " --int8 " in card.retrain
    assert np.allclose(card.conventions["a"], 0.0) and not np.allclose(card.conventions["b"], 0.0)
    table = torch.load(recipe_run, map_location="cpu", weights_only=True)["state_dict"]["point_offset"]
    assert np.allclose(card.point_offset, table[0].numpy(), atol=1e-6) and not np.allclose(card.point_offset, 0.0)


def test_flip_averaging_answers_alike_from_the_checkpoint_and_its_export(recipe_run: Path, tmp_path: Path) -> None:
    """Both paths take the learned offset out of the mirrored answer; the checkpoint reads it from its weights."""
    from facepoints.export import export_onnx
    from facepoints.inference import load, load_any

    onnx_path = export_onnx(recipe_run, tmp_path / "tiny.onnx", name="tiny")
    image = np.random.default_rng(0).integers(0, 255, (120, 100, 3), dtype=np.uint8)
    box = np.array([[20.0, 25.0, 80.0, 95.0]])
    a = load_any(recipe_run, flip_average=True).landmarks(image, box)
    b = load(onnx_path, flip_average=True).landmarks(image, box)
    plain = load(onnx_path).landmarks(image, box)
    assert np.allclose(a, b, atol=1e-3) and not np.allclose(b, plain, atol=1e-3)


class _Payload:
    """A pickle that runs a shell command when loaded with weights_only=False."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["evaluate", "export", "init_from", "resume"])
def test_a_crafted_checkpoint_never_runs_code(command: str, tmp_path: Path, recipe_run: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "run" / ("last.pt" if command == "resume" else "evil.pt")
    evil.parent.mkdir()
    torch.save({"state_dict": _Payload(marker), "normalisation": {}, "scheme": {}}, evil)
    data = recipe_run.parent.parent / "a"
    base = [f"data.train=[{{path: {data}, format: ibug-pts}}]", f"out_dir={evil.parent}", "workers=0",
            "optim.epochs=1", "model.input_size=48"]
    args = {
        "evaluate": ["evaluate", str(evil), str(data), "--out", str(tmp_path / "ev")],
        "export": ["export", str(evil), "--out", str(tmp_path / "x.onnx")],
        "init_from": ["train", str(ROOT / "configs" / "default.yaml"), *sum([["-o", o] for o in base], []),
                      "-o", f"init_from={evil}"],
        "resume": ["train", str(ROOT / "configs" / "default.yaml"), *sum([["-o", o] for o in base], []), "--resume"],
    }[command]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0
    assert not marker.exists(), f"loading a crafted checkpoint through {command} ran its code"
