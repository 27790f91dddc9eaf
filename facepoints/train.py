"""The training loop, in named steps: set up, resume, train an epoch, validate and save.

The run's config is ``facepoints.recipe``, its faces and tensors
``facepoints.trainset``, its losses ``facepoints.losses`` and its checkpoints
``facepoints.checkpoint``; a checkpoint alone is enough to evaluate or export
the model. A run is refused before training when its config or data cannot
give a meaningful validation NME, and it never names a best.pt it did not write.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from facepoints.checkpoint import (
    atomic_save,
    checkpoint_payload,
    global_rng_state,
    init_weights,
    read_checkpoint,
    restore_global_rng,
)
from facepoints.config import save_config
from facepoints.datasets import Sample
from facepoints.distill import Teacher, build_teacher, distill_loss
from facepoints.layout import memory_format
from facepoints.losses import LOSSES, Loss, nme_batch, total_loss
from facepoints.models import build_model, count_parameters
from facepoints.recipe import OptimConfig, TrainConfig, check_config, load_train_config
from facepoints.schemes import PointScheme, load_scheme
from facepoints.trainset import LandmarkDataset, TrainingError, prepare_samples, seed_everything

__all__ = ["LandmarkDataset", "Run", "TrainConfig", "TrainingError", "load_train_config", "train"]


# ---------------------------------------------------------------- optimisation


def _make_optimizer(model: nn.Module, o: OptimConfig) -> torch.optim.Optimizer:
    if o.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


def _make_scheduler(opt: torch.optim.Optimizer, o: OptimConfig, steps_per_epoch: int):
    if o.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=o.plateau_factor, patience=o.plateau_patience)
    if o.scheduler == "cosine":
        total = max(1, o.epochs * steps_per_epoch)
        warm = o.warmup_epochs * steps_per_epoch

        def f(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        return torch.optim.lr_scheduler.LambdaLR(opt, f)
    return None


def evaluate_loader(model: nn.Module, loader: DataLoader, loss_fn: Loss, pair: tuple[int, int]) -> tuple[float, float]:
    """Validation loss and NME, each face judged in its own source's convention."""
    model.eval()
    losses, nmes = [], []
    table = model.offset_table() if getattr(model, "point_offset", None) is not None else None
    with torch.no_grad():
        for x, t, m, _, conv in loader:
            p = model(x)["points"]
            if table is not None:
                p = p + table[conv.long()] - table[0]
            losses.append(float(loss_fn(p, t, m)) * len(x))
            nmes.append(nme_batch(p, t, m, pair))
    n = len(loader.dataset)
    return sum(losses) / max(n, 1), float(torch.cat(nmes).nanmean()) if nmes else float("nan")


def plot_history(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [r["train_loss"] for r in rows], label="train")
    a.plot(ep, [r["val_loss"] for r in rows], label="validation")
    a.set_yscale("log")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(ep, [100 * r["val_nme"] for r in rows], color="tab:red")
    b.set_xlabel("epoch")
    b.set_ylabel("validation NME (%)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def init_distributed() -> tuple[int, int]:
    """(rank, world size); under ``torchrun`` joins the process group (gloo on CPU, NCCL on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _finish_distributed(core: nn.Module, out: Path, rank: int, world: int, seen: list[str]) -> None:
    """Each rank records its first-epoch shard and a digest of its final weights (they must all agree)."""
    import json

    import torch.distributed as dist

    (out / "ranks").mkdir(exist_ok=True)
    info = {"rank": rank, "world_size": world, "first_epoch_samples": seen, "weights_sha1": _weights_digest(core)}
    (out / "ranks" / f"rank{rank}.json").write_text(json.dumps(info), encoding="utf-8")
    dist.barrier()
    dist.destroy_process_group()


def _write_history(rows: list[dict], out: Path) -> None:
    with open(out / "history.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot_history(rows, out / "history.png")


# ---------------------------------------------------------------- the run


@dataclass
class Run:
    """Everything one training run holds between its steps."""

    cfg: TrainConfig
    scheme: PointScheme
    out: Path
    rank: int
    world: int
    progress: bool
    core: nn.Module  # the unwrapped model: what checkpoints and validation use
    model: nn.Module  # ``core``, wrapped in DDP when distributed
    flip_index: torch.Tensor | None
    train_ds: LandmarkDataset
    train_loader: DataLoader
    val_loader: DataLoader
    sampler: DistributedSampler | None
    generator: torch.Generator
    opt: torch.optim.Optimizer
    sched: Any
    teacher: Teacher | None = None
    best: float = float("inf")
    stale: int = 0
    rows: list[dict] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # first-epoch shard of this rank (DDP check)

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"


def _build_model(cfg: TrainConfig, scheme: PointScheme, progress: bool) -> nn.Module:
    m = cfg.model
    kwargs = dict(m.kwargs)
    if len(cfg.data.conventions) > 1:
        kwargs["conventions"] = len(cfg.data.conventions)
        cfg.model.kwargs = kwargs  # the checkpoint rebuilds the same shape
    model = build_model(m.name, scheme.num_points, m.input_size, m.channels, **kwargs)
    if cfg.init_from:
        init_weights(model, cfg.init_from, progress)
    return model.to(memory_format=memory_format(cfg.channels_last))


def _setup(cfg: TrainConfig, scheme: PointScheme, samples: tuple[list[Sample], list[Sample]], out: Path,
           rank: int, world: int, progress: bool) -> Run:
    """Model, loaders, optimiser and scheduler for the prepared samples."""
    train_samples, val_samples = samples
    core = _build_model(cfg, scheme, progress)
    model = nn.parallel.DistributedDataParallel(core) if world > 1 else core
    o = cfg.optim
    g = torch.Generator().manual_seed(cfg.seed + 1000 * rank)
    train_ds = LandmarkDataset(train_samples, cfg, scheme, train=True)
    sampler = (DistributedSampler(train_ds, world, rank, shuffle=True, seed=cfg.seed, drop_last=True)
               if world > 1 else None)
    train_loader = DataLoader(
        train_ds, batch_size=o.batch_size, shuffle=sampler is None, sampler=sampler,
        num_workers=cfg.workers, generator=g, drop_last=len(train_samples) > o.batch_size * world,
        persistent_workers=False,
    )
    val_loader = DataLoader(LandmarkDataset(val_samples, cfg, scheme, train=False), batch_size=64, num_workers=0)
    opt = _make_optimizer(model, o)
    flip_index = torch.tensor(scheme.flip_permutation()) if scheme.flip_index is not None else None
    return Run(cfg, scheme, out, rank, world, progress, core, model, flip_index, train_ds, train_loader, val_loader,
               sampler, g, opt, _make_scheduler(opt, o, len(train_loader)),
               build_teacher(cfg.teacher, scheme.num_points, cfg.model.channels))


def _resume(run: Run) -> int:
    """Continue from ``last.pt`` if there is one; returns the first epoch to train."""
    if not run.last_path.exists():
        if run.progress:
            print(f"no checkpoint at {run.last_path}; starting fresh")
        return 1
    ck = read_checkpoint(run.last_path)
    run.core.load_state_dict(ck["state_dict"])
    run.opt.load_state_dict(ck["optimizer"])
    if run.sched is not None and ck.get("scheduler"):
        run.sched.load_state_dict(ck["scheduler"])
    run.best, run.stale, run.rows = ck["best_nme"], ck["stale"], ck["history"]
    torch.set_rng_state(ck["torch_rng"])
    run.generator.set_state(ck["loader_rng"])
    if "global_rng" in ck:  # checkpoints from before these keys resume as they always did
        restore_global_rng(ck["global_rng"])
    if "data_rng" in ck:
        run.train_ds.set_random_state(ck["data_rng"])
    if run.progress:
        print(f"resumed from {run.last_path} at epoch {ck['epoch'] + 1}")
    return ck["epoch"] + 1


def _train_epoch(run: Run, epoch: int, first_epoch: int) -> float:
    """One pass over the training faces; returns the mean training loss."""
    cfg, o = run.cfg, run.cfg.optim
    run.model.train()
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
        if epoch == first_epoch:
            run.seen = [run.train_ds.samples[i].source for i in run.sampler]
    total, n = 0.0, 0
    bar = tqdm(run.train_loader, desc=f"epoch {epoch}/{o.epochs}", disable=not run.progress, leave=False)
    fmt = memory_format(cfg.channels_last)
    for x, t, mk, fl, cv in bar:
        x = x.contiguous(memory_format=fmt)
        out = run.model(x)
        loss = total_loss(out, t, mk, o, fl, cv, run.flip_index)
        if run.teacher is not None:
            loss = loss + o.distill_weight * distill_loss(out, run.teacher.points(x), o.loss)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        if o.grad_clip:
            nn.utils.clip_grad_norm_(run.model.parameters(), o.grad_clip)
        run.opt.step()
        if o.scheduler == "cosine":
            run.sched.step()
        total += float(loss.detach()) * len(x)
        n += len(x)
        bar.set_postfix(loss=f"{total / n:.5f}")
    return total / max(n, 1)


def _save(run: Run, epoch: int, val_nme: float, improved: bool) -> None:
    """best.pt when validation improved; always last.pt, with all that resuming needs (rank 0 only)."""
    payload = checkpoint_payload(run.core, run.cfg, run.scheme, epoch=epoch, best_nme=run.best, val_nme=val_nme,
                                 history=run.rows, stale=run.stale)
    if improved:
        atomic_save(payload, run.best_path)
    payload.update(optimizer=run.opt.state_dict(), scheduler=run.sched.state_dict() if run.sched else None,
                   torch_rng=torch.get_rng_state(), loader_rng=run.generator.get_state(),
                   global_rng=global_rng_state(), data_rng=run.train_ds.random_state())
    atomic_save(payload, run.last_path)
    _write_history(run.rows, run.out)


def _end_epoch(run: Run, epoch: int, train_loss: float, t0: float) -> bool:
    """Validate, step a plateau scheduler, save; returns True when early stopping ends the run."""
    o = run.cfg.optim
    val_loss, val_nme = evaluate_loader(run.core, run.val_loader, LOSSES[o.loss], run.scheme.normalise)
    if not math.isfinite(val_nme):
        raise TrainingError(f"validation NME is {val_nme} after epoch {epoch}: the model diverged or validation "
                            f"has no usable faces; try a lower optim.lr ({o.lr:g})")
    if o.scheduler == "plateau":
        run.sched.step(val_loss)
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_nme": val_nme,
           "lr": run.opt.param_groups[0]["lr"], "seconds": time.time() - t0}
    run.rows.append(row)
    improved = val_nme < run.best
    run.best, run.stale = (val_nme, 0) if improved else (run.best, run.stale + 1)
    if run.rank == 0:
        _save(run, epoch, val_nme, improved)
    if run.progress:
        tqdm.write(f"epoch {epoch}: train {train_loss:.5f} val {val_loss:.5f} "
                   f"NME {100 * val_nme:.2f}% lr {row['lr']:.2e} ({row['seconds']:.0f}s){' *' if improved else ''}")
    if o.early_stopping and run.stale >= o.early_stopping:
        if run.progress:
            print(f"early stopping: no improvement for {run.stale} epochs")
        return True
    return False


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train as configured; returns the path of the best checkpoint (by validation NME).

    Under ``torchrun --nproc_per_node N`` each rank trains on its own shard of
    every epoch (DistributedSampler) and DDP averages gradients; rank 0 alone
    writes logs and checkpoints. Raises ``ConfigError`` / ``TrainingError``
    before training when the config or data cannot give a meaningful run.
    """
    scheme = load_scheme(cfg.data.scheme)
    check_config(cfg, scheme)
    rank, world = init_distributed()
    progress = progress and rank == 0
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + rank)  # ranks augment differently; DDP broadcasts rank 0's initial weights
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    samples = prepare_samples(cfg, scheme, out, progress)
    if rank == 0:
        save_config(cfg, out / "config.yaml")
    run = _setup(cfg, scheme, samples, out, rank, world, progress)
    start = _resume(run) if resume else 1
    if progress:
        print(f"model {cfg.model.name}: {count_parameters(run.core):,} parameters"
              + (f", {world} processes" if world > 1 else ""))
    for epoch in range(start, cfg.optim.epochs + 1):
        t0 = time.time()
        if _end_epoch(run, epoch, _train_epoch(run, epoch, start), t0):
            break
    if world > 1:
        _finish_distributed(run.core, out, rank, world, run.seen)
    if rank == 0 and not run.best_path.exists():
        raise TrainingError(f"no epoch gave a finite validation NME, so {run.best_path} was not written")
    return run.best_path
