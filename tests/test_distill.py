"""Distillation: a trained teacher's points as extra targets (facepoints.distill)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facepoints.checkpoint import load_checkpoint
from facepoints.config import ConfigError
from facepoints.distill import Teacher, distill_loss
from facepoints.models import build_model
from facepoints.train import train
from tests.training_builders import pts_dataset, tiny_config

HEATMAP = {"model.name": "heatmap", "model.channels": 3, "optim.loss": "wing", "optim.optimizer": "adamw",
           "optim.lr": 2e-3, "augment.flip": 0}


NET = "{widths: [8, 16, 16, 24, 32], depths: [1, 1, 1, 1], decoder: 16}"


def _run(tmp: Path, data: Path, name: str, **over) -> Path:
    return train(tiny_config(tmp / name, data, **{**HEATMAP, **over}), progress=False)


def test_a_patch_stem_keeps_the_heatmap_grid_and_outputs() -> None:
    model = build_model("heatmap", 68, 96, 3, patch_stem=True, widths=[8, 16, 16, 24, 32], decoder=16)
    assert model.stem[0].kernel_size == (4, 4) and model.stem[0].stride == (4, 4)
    out = model.train()(torch.rand(2, 3, 96, 96))
    assert out["points"].shape == (2, 68, 2) and out["heatmaps"].shape == (2, 68, 24, 24)


def test_training_adds_the_teachers_term_and_the_recipe_names_the_teacher(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=16)
    teacher_path = _run(tmp_path, pts_dataset(tmp_path / "jaw", n=16, jaw_drop=10.0), "teacher",
                        **{"model.input_size": 48, "optim.epochs": 2, "model.kwargs": NET})
    student = {"model.input_size": 40, "optim.epochs": 1, "model.kwargs": NET}
    plain = _run(tmp_path, data, "plain", **student)
    taught = _run(tmp_path, data, "taught", teacher=str(teacher_path), **{"optim.distill_weight": 5.0}, **student)
    _, ck = load_checkpoint(taught)
    assert ck["config"]["teacher"] == str(teacher_path)  # the recipe beside the weights names its teacher

    def first_loss(best: Path) -> float:
        return float((best.parent / "history.csv").read_text().splitlines()[1].split(",")[1])

    # same seed and batches: the teacher's (non-negative) term is the whole difference
    assert first_loss(taught) > first_loss(plain) + 1e-4


def test_the_distillation_loss_pulls_a_student_to_its_teacher() -> None:
    """A 40 px student fitted to a 48 px teacher's answers alone (its crops upsampled) ends at them."""
    torch.manual_seed(0)
    kw = {"widths": [8, 16, 16, 24, 32], "depths": [1, 1, 1, 1], "decoder": 16}
    teacher = Teacher.__new__(Teacher)
    teacher.model, teacher.input_size = build_model("heatmap", 68, 48, 3, **kw).eval(), 48
    student = build_model("heatmap", 68, 40, 3, point_offset=True, **kw).train()
    x = torch.rand(4, 3, 40, 40)
    want = teacher.points(x)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    start = float((student(x)["raw_points"] - want).norm(dim=-1).mean())
    for _ in range(60):
        loss = distill_loss(student(x), want, "wing")
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = float((student(x)["raw_points"] - want).norm(dim=-1).mean())
    assert end < 0.3 * start
    same = {"points": want, "raw_points": want}
    assert float(distill_loss(same, want, "wing")) == pytest.approx(0.0, abs=1e-7)


def test_a_teacher_for_other_points_or_channels_is_refused(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=12)
    path = _run(tmp_path, data, "teacher", **{
        "model.input_size": 32, "optim.epochs": 1,
        "model.kwargs": "{widths: [8, 16, 16, 24, 24], depths: [1, 1, 1, 1], decoder: 16}"})
    with pytest.raises(ConfigError, match="teacher"):
        Teacher(path, 68, 1)
    with pytest.raises(ConfigError, match="15 from 3"):
        Teacher(path, 15, 3)
    assert np.isfinite(Teacher(path, 68, 3).points(torch.rand(1, 3, 32, 32)).numpy()).all()
