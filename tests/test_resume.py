"""Resuming a run: bit-exact with ``workers: 0``, and from checkpoints written before the RNG keys existed."""

from __future__ import annotations

from pathlib import Path

import torch

from facepoints.train import train
from tests.training_builders import pts_dataset, tiny_config


def _history(run: Path) -> list[str]:
    return (run / "history.csv").read_text().strip().splitlines()


def test_resume_is_bit_exact_with_workers_0(tmp_path: Path) -> None:
    data = pts_dataset(tmp_path / "data", n=16)
    whole = tiny_config(tmp_path / "whole", data, **{"optim.epochs": 3})
    train(whole, progress=False)
    part = tiny_config(tmp_path / "part", data, **{"optim.epochs": 2})
    train(part, progress=False)
    train(tiny_config(tmp_path / "part", data, **{"optim.epochs": 3}), resume=True, progress=False)
    a, b = _history(Path(whole.out_dir)), _history(Path(part.out_dir))
    loss = [r.split(",")[1] for r in a[1:]], [r.split(",")[1] for r in b[1:]]
    assert loss[0] == loss[1], loss  # every epoch's training loss to the last digit, epoch 3 included
    sa = torch.load(Path(whole.out_dir) / "last.pt", weights_only=True)["state_dict"]
    sb = torch.load(Path(part.out_dir) / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_from_a_checkpoint_without_the_new_rng_keys(tmp_path: Path) -> None:
    """last.pt files written before global_rng/data_rng existed (runs in progress) still resume."""
    data = pts_dataset(tmp_path / "data", n=12)
    cfg = tiny_config(tmp_path, data, **{"optim.epochs": 1})
    train(cfg, progress=False)
    last = Path(cfg.out_dir) / "last.pt"
    ck = torch.load(last, weights_only=True)
    assert {"global_rng", "data_rng"} <= set(ck)
    torch.save({k: v for k, v in ck.items() if k not in ("global_rng", "data_rng")}, last)
    best = train(tiny_config(tmp_path, data, **{"optim.epochs": 2}), resume=True, progress=False)
    rows = _history(Path(cfg.out_dir))
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"] and best.exists()
