from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facepoints.checkpoint import load_checkpoint
from facepoints.config import ConfigError, load_config
from facepoints.inference import load_any
from facepoints.models import MODELS, build_model
from facepoints.schemes import load_scheme
from facepoints.train import LandmarkDataset, TrainConfig, load_train_config, train
from tests.conftest import synthetic_face
from tests.training_builders import pts_dataset, tiny_config, youtube_csv

ROOT = Path(__file__).resolve().parents[1]


def test_seed_config_is_the_seed_recipe() -> None:
    cfg = load_train_config(ROOT / "configs" / "seed_baseline.yaml")
    o = cfg.optim
    assert (o.optimizer, o.lr, o.weight_decay, o.batch_size, o.epochs, o.scheduler, o.loss) == (
        "adam", 1e-4, 1e-5, 32, 50, "plateau", "mse")
    assert cfg.model.name == "baseline" and cfg.augment.rotate == 15.0 and cfg.augment.flip > 0
    assert cfg.augment.brightness_contrast_p > 0 and cfg.augment.blur_p > 0 and cfg.augment.shift_scale_rotate_p > 0


def test_config_overrides_and_typos(tmp_path: Path) -> None:
    cfg = load_train_config(ROOT / "configs" / "seed_baseline.yaml", ["optim.lr=3e-4", "model.input_size=48"])
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float) and cfg.model.input_size == 48
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError):
        load_train_config(None, ["optim.scheduler=sometimes"])
    with pytest.raises(ConfigError):
        load_config(TrainConfig, None, ["noequals"])


def test_model_registry_contract() -> None:
    assert "baseline" in MODELS
    m = build_model("baseline", 68, 64, 1)
    out = m(torch.rand(3, 1, 64, 64))
    assert out["points"].shape == (3, 68, 2)
    with pytest.raises(KeyError):
        build_model("nope", 68, 64, 1)


def test_heatmap_model_trains_channels_last_with_the_regulariser(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=16)
    cfg = tiny_config(tmp_path, data, **{
        "model.name": "heatmap", "model.channels": 3, "model.input_size": 48,
        "model.kwargs": "{widths: [8, 16, 16, 24, 32], depths: [1, 1, 1, 1], decoder: 16}",
        "optim.epochs": 4, "optim.loss": "wing", "optim.optimizer": "adamw", "optim.lr": 2e-3,
        "optim.heatmap_weight": 1.0, "channels_last": True})
    best = train(cfg, progress=False)
    rows = (Path(cfg.out_dir) / "history.csv").read_text().strip().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert losses[-1] < losses[0]  # the regulariser is in the training loss and falls
    model, _ = load_checkpoint(best)
    assert model(torch.rand(2, 3, 48, 48))["points"].shape == (2, 68, 2)  # a standard-layout checkpoint


def test_dataset_reports_which_samples_were_mirrored(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=4)
    from facepoints.datasets import load_dataset

    samples, _ = load_dataset(str(data), progress=False)
    for p_flip, expected in ((1.0, 1.0), (0.0, 0.0)):
        cfg = tiny_config(tmp_path, data, **{"augment.flip": p_flip})
        ds = LandmarkDataset(samples, cfg, load_scheme("ibug68"), train=True)
        assert {float(ds[i][3]) for i in range(4)} == {expected}


def test_dataset_targets_match_points(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=4)
    cfg = tiny_config(tmp_path, data, **{"model.input_size": 64})
    from facepoints.datasets import load_dataset

    samples, _ = load_dataset(str(data), progress=False)
    ds = LandmarkDataset(samples, cfg, load_scheme("ibug68"), train=False)
    x, t, m, flipped, conv = ds[0]
    assert float(flipped) == 0.0  # validation data is never mirrored
    assert x.shape == (1, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert m.all() and t.shape == (68, 2)
    # the image-left eye (blue in the synthetic face) is where the target says
    img = samples[0].image
    ex, ey = samples[0].points[36:42].mean(0).round().astype(int)
    assert img[ey, ex, 2] > 150 and img[ey, ex, 0] < 80
    assert 0.1 < float(t[:, 0].min()) and float(t[:, 0].max()) < 0.9


def test_short_training_run_loss_falls_and_resumes(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=24)
    cfg = tiny_config(tmp_path, data, **{"optim.epochs": 10})
    best = train(cfg, progress=False)
    out = Path(cfg.out_dir)
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 11
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert losses[-1] < 0.6 * losses[0]
    assert (out / "history.png").stat().st_size > 1000 and (out / "config.yaml").exists()
    assert "records" in (out / "cleaning_report.txt").read_text()
    model, ck = load_checkpoint(best)
    assert ck["scheme"]["name"] == "ibug68" and ck["normalisation"]["input_size"] == 32
    assert ck["config"]["optim"]["epochs"] == 10 and not list(out.glob("*.tmp"))

    cfg2 = tiny_config(tmp_path, data, **{"optim.epochs": 12})
    train(cfg2, resume=True, progress=False)
    rows2 = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows2) == 13 and rows2[1:11] == rows[1:]  # epochs 1-10 kept, 11-12 added

    from facepoints.datasets import load_dataset

    samples, _ = load_dataset(str(data), progress=False)
    from facepoints.geometry import tight_box

    model = load_any(best)
    pred = np.stack([model.landmarks(s.image, tight_box(s.points)[None])[0] for s in samples[:3]])
    assert pred.shape == (3, 68, 2) and model.scheme.name == "ibug68"
    assert (pred >= -0.5).all() and (pred[..., 0] <= 159.5).all()


def test_training_is_reproducible(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=12)
    a = train(tiny_config(tmp_path / "a", data, **{"optim.epochs": 2}), progress=False)
    b = train(tiny_config(tmp_path / "b", data, **{"optim.epochs": 2}), progress=False)
    sa = torch.load(a, weights_only=True)["state_dict"]
    sb = torch.load(b, weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_early_stopping(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=12)
    cfg = tiny_config(tmp_path, data, **{"optim.epochs": 30, "optim.early_stopping": 1, "optim.lr": 0.0})
    train(cfg, progress=False)
    rows = (Path(cfg.out_dir) / "history.csv").read_text().strip().splitlines()
    assert len(rows) - 1 < 30


def test_distributed_two_processes_shard_data_and_agree(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    data = pts_dataset(tmp_path / "data", n=20)
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "facepoints.cli", "train", str(ROOT / "configs" / "seed_baseline.yaml"),
           "-o", f"data.train=[{{path: {data}, format: ibug-pts}}]", "-o", "data.val_fraction=0.25",
           "-o", f"out_dir={run}", "-o", "model.input_size=32", "-o", "model.kwargs={widths: [8, 16], hidden: [32]}",
           "-o", "optim.batch_size=4", "-o", "optim.epochs=2", "-o", "workers=0", "-o", "threads=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                                  "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((run / "ranks" / "rank0.json").read_text())
    r1 = json.loads((run / "ranks" / "rank1.json").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    s0, s1 = set(r0["first_epoch_samples"]), set(r1["first_epoch_samples"])
    assert s0 and s1 and not s0 & s1  # each rank trained on its own shard
    assert r0["weights_sha1"] == r1["weights_sha1"]  # and they ended with identical weights
    model, _ = load_checkpoint(run / "last.pt")
    from facepoints.train import _weights_digest

    assert _weights_digest(model) == r0["weights_sha1"]


@pytest.mark.parametrize("case", ["all points NaN", "collapsed points", "missing images"])
def test_train_refuses_data_without_usable_faces_and_writes_no_best(tmp_path: Path, case: str) -> None:
    from facepoints.trainset import TrainingError

    good = [synthetic_face(128, seed=i)[1] for i in range(8)]
    if case == "all points NaN":
        faces, images = [np.full((68, 2), np.nan)] * 8, True
    elif case == "collapsed points":
        faces, images = [np.full((68, 2), 50.0)] * 8, True
    else:
        faces, images = good, False
    val = youtube_csv(tmp_path / "val", faces, images)
    train_csv = youtube_csv(tmp_path / "train", good)
    cfg = tiny_config(tmp_path, tmp_path, **{"data.train": f"[{{path: {train_csv}}}]",
                                              "data.val": f"[{{path: {val}}}]", "optim.epochs": 1})
    with pytest.raises(TrainingError, match="no usable validation faces") as e:
        train(cfg, progress=False)
    assert "\n" not in str(e.value) and "cleaning_report.txt" in str(e.value)
    assert not (Path(cfg.out_dir) / "best.pt").exists() and not (Path(cfg.out_dir) / "last.pt").exists()


def test_train_refuses_no_training_faces_and_bad_epochs_before_reading(tmp_path: Path) -> None:
    from facepoints.config import ConfigError
    from facepoints.trainset import TrainingError

    bad = youtube_csv(tmp_path / "bad", [np.full((68, 2), np.nan)] * 4)
    cfg = tiny_config(tmp_path, tmp_path, **{"data.train": f"[{{path: {bad}}}]", "optim.epochs": 1})
    with pytest.raises(TrainingError, match="no usable training faces"):
        train(cfg, progress=False)
    missing = tiny_config(tmp_path / "m", tmp_path / "nowhere", **{"optim.epochs": -1})
    with pytest.raises(ConfigError, match="optim.epochs must be at least 1, not -1"):
        train(missing, progress=False)  # refused before the (missing) data would be read
    assert not Path(missing.out_dir).exists()


def test_a_diverging_run_is_refused_not_reported(tmp_path: Path) -> None:
    """A NaN validation NME stops the run with a message; no best.pt is claimed."""
    from facepoints.trainset import TrainingError

    data = pts_dataset(tmp_path / "data", n=12)
    cfg = tiny_config(tmp_path, data, **{"optim.epochs": 2, "optim.lr": 1e30})
    with pytest.raises(TrainingError, match="validation NME is nan after epoch 1"):
        train(cfg, progress=False)
    assert not (Path(cfg.out_dir) / "best.pt").exists()
