"""Samples -> tensors -> a trained checkpoint.

One config dataclass describes a run completely; it is saved next to the
checkpoints, and checkpoints carry the config, point scheme and input
normalisation, so a checkpoint alone is enough to evaluate or export it.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from facepoints import geometry
from facepoints.augment import AugmentConfig, build_augmenter, jitter_box
from facepoints.config import load_config, path_field, save_config
from facepoints.datasets import CleaningReport, DatasetSpec, Sample, load_dataset, split_by_group
from facepoints.models import build_model, cell_centres, count_parameters
from facepoints.schemes import PointScheme, SchemeError, load_scheme


@dataclass
class DataConfig:
    train: list[DatasetSpec] = field(default_factory=list)
    val: list[DatasetSpec] = field(default_factory=list)  # empty: hold out groups of the training data
    val_fraction: float = 0.1
    policy: Literal["mask", "drop"] = "mask"
    scheme: str = path_field("ibug68", maybe_name=True)  # a built-in name or your YAML scheme file
    # Annotation conventions, the first being the model's output; each train/val
    # source names its own (DatasetSpec.convention). Empty: one convention.
    conventions: list[str] = field(default_factory=list)
    repeat: dict[str, int] = field(default_factory=dict)  # convention -> times its training faces appear per epoch


@dataclass
class ModelConfig:
    name: str = "baseline"
    input_size: int = 96
    channels: int = 1
    context: float = 1.25  # crop side = context x longer side of the tight landmark box
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 32
    epochs: int = 50
    scheduler: Literal["plateau", "cosine", "none"] = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    warmup_epochs: int = 0
    loss: str = "mse"
    grad_clip: float = 0.0
    early_stopping: int = 0  # epochs without val NME improvement before stopping; 0 = off
    score_weight: float = 0.1  # weight of the confidence loss, for models with a score head
    score_tau: float = 0.01  # confidence target exp(-error / tau), error in crop-normalised units
    heatmap_weight: float = 0.0  # weight of the heatmap-shape regulariser (JS divergence to a Gaussian), 0 = off
    heatmap_sigma: float = 1.0  # that Gaussian's sigma, in heatmap cells


@dataclass
class TrainConfig:
    name: str = "run"
    out_dir: str = "runs/run"
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    workers: int = 1  # DataLoader worker processes for decoding/augmentation
    max_train_samples: int = 0  # 0 = all; small values make smoke runs
    channels_last: bool = False  # NHWC tensors: ~1.5x faster training of depthwise nets on x86 CPUs
    init_from: str = path_field("")  # checkpoint whose same-shaped weights start this run (e.g. a 68-point model for 15 points)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


# ---------------------------------------------------------------- losses

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _masked_mean(per_point: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid points only: masked points contribute neither error nor weight."""
    m = mask.to(per_point.dtype)
    return (per_point * m).sum() / m.sum().clamp_min(1.0)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _masked_mean(((pred - target) ** 2).mean(-1), mask)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _masked_mean((pred - target).abs().mean(-1), mask)


def wing_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, w: float = 0.04, eps: float = 0.008) -> torch.Tensor:
    """Wing loss (Feng et al. 2018) in normalised units: log-like for small errors, L1 for large."""
    d = (pred - target).abs()
    c = w - w * math.log(1 + w / eps)
    per = torch.where(d < w, w * torch.log1p(d / eps), d - c)
    return _masked_mean(per.mean(-1), mask)


LOSSES: dict[str, Loss] = {"mse": mse_loss, "l1": l1_loss, "wing": wing_loss}


def score_loss(out: dict[str, torch.Tensor], target: torch.Tensor, mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Teach the confidence head to predict closeness, exp(-error / tau), of its own (detached) points."""
    err = torch.linalg.norm(out["points"].detach() - target, dim=-1)
    goal = torch.exp(-err / tau)
    bce = nn.functional.binary_cross_entropy_with_logits(out["score_logits"], goal, reduction="none")
    return _masked_mean(bce, mask)


def heatmap_loss(heatmaps: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Jensen-Shannon divergence of each heatmap to a Gaussian at the true point (DSNT, Nibali et al. 2018).

    Soft-argmax alone accepts any distribution with the right mean, e.g. a
    flat or two-peaked one; pulling it towards one sharp peak makes the mean
    precise and training faster.
    """
    h, w = heatmaps.shape[-2:]
    xs, ys = cell_centres(w, heatmaps.device), cell_centres(h, heatmaps.device)
    gx = torch.exp(-0.5 * ((xs - target[..., :1]) * w / sigma) ** 2)  # (N, K, w)
    gy = torch.exp(-0.5 * ((ys - target[..., 1:]) * h / sigma) ** 2)  # (N, K, h)
    goal = gy.unsqueeze(-1) * gx.unsqueeze(-2)
    goal = goal / goal.sum((-2, -1), keepdim=True).clamp_min(1e-12)
    p, q = heatmaps.clamp_min(1e-12), goal.clamp_min(1e-12)
    m = 0.5 * (p + q)
    js = 0.5 * ((p * (p / m).log()).sum((-2, -1)) + (q * (q / m).log()).sum((-2, -1)))
    return _masked_mean(js, mask)


def applied_offset(table: torch.Tensor, conv: torch.Tensor | None, flipped: torch.Tensor | None,
                   flip_index: torch.Tensor | None) -> torch.Tensor:
    """Each sample's (K, 2) offset: its convention's, mirrored when the sample was mirrored.

    A mirrored image carries the mirror image of the annotators' habits:
    point k of the flipped face was drawn as point flip[k], with x negated.
    """
    n = len(flipped) if flipped is not None else (len(conv) if conv is not None else 1)
    idx = conv.long() if conv is not None else torch.zeros(n, dtype=torch.long)
    off = table[idx]  # (N, K, 2)
    if flipped is None or flip_index is None:
        return off
    mirrored = off[:, flip_index] * torch.tensor([-1.0, 1.0], dtype=off.dtype)
    return torch.where(flipped.to(off.dtype)[:, None, None] > 0.5, mirrored, off)


def total_loss(out: dict[str, torch.Tensor], target: torch.Tensor, mask: torch.Tensor, o: OptimConfig,
               flipped: torch.Tensor | None = None, conv: torch.Tensor | None = None,
               flip_index: torch.Tensor | None = None) -> torch.Tensor:
    """Coordinate loss + confidence and heatmap terms.

    A model with a ``point_offset`` adds each sample's convention offset
    (mirrored for mirrored samples) to its raw points, so the heatmaps learn
    one symmetric, convention-free face (see models.HeatmapNet).
    """
    heat_target = target
    if "point_offset" in out:
        off = applied_offset(out["point_offset"], conv, flipped, flip_index)
        out = {**out, "points": out["raw_points"] + off}
        heat_target = target - off.detach()
    loss = LOSSES[o.loss](out["points"], target, mask)
    if "score_logits" in out and o.score_weight:
        loss = loss + o.score_weight * score_loss(out, target, mask, o.score_tau)
    if "heatmaps" in out and o.heatmap_weight:
        loss = loss + o.heatmap_weight * heatmap_loss(out["heatmaps"], heat_target, mask, o.heatmap_sigma)
    return loss


# ---------------------------------------------------------------- tensors


class LandmarkDataset(Dataset):
    """Sample -> (input tensor, normalised target, mask); the crop is taken around the tight point box."""

    def __init__(self, samples: list[Sample], cfg: TrainConfig, scheme: PointScheme, train: bool) -> None:
        self.samples = samples
        self.conventions = {name: i for i, name in enumerate(cfg.data.conventions)}
        self.cfg = cfg
        self.scheme = scheme
        self.train = train
        self._aug_seed: int | None = None
        self._aug = None
        self._rng = np.random.default_rng(cfg.seed)

    def __len__(self) -> int:
        return len(self.samples)

    def _augmenter(self):
        # torch gives each worker and epoch its own seed, derived from the run's seed
        seed = torch.initial_seed() % 2**31
        if self._aug_seed != seed:
            self._aug = build_augmenter(self.cfg.augment, self.scheme, seed=seed)
            self._rng = np.random.default_rng(seed)
            self._aug_seed = seed
        return self._aug

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input, normalised target, mask, 1.0 if the sample was mirrored else 0.0, convention index)."""
        s = self.samples[i]
        m = self.cfg.model
        box = s.crop_box
        aug = self._augmenter() if self.train else None
        if aug is not None:
            box = jitter_box(box, self._rng, self.cfg.augment.box_shift, self.cfg.augment.box_scale)
        mat = geometry.crop_matrix(box, m.input_size, m.context)
        crop = geometry.warp_crop(s.image, mat, m.input_size)
        pts = geometry.apply_affine(s.points, mat).astype(np.float32)
        mask = s.mask.copy() if s.visible is None else s.mask & s.visible  # occluded: out of the loss
        flipped = False
        if aug is not None:
            crop, pts, mask = aug(crop, pts, mask)
            flipped = aug.last_flipped
        x = geometry.crop_to_input(crop, m.channels)
        target = geometry.to_normalised(pts, m.input_size).astype(np.float32)
        target[~mask] = 0.0
        return (torch.from_numpy(x), torch.from_numpy(target), torch.from_numpy(mask.astype(bool)),
                torch.tensor(float(flipped)), torch.tensor(self.conventions.get(s.convention, 0)))


def nme_batch(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, pair: tuple[int, int]) -> torch.Tensor:
    """Per-face NME; the crop is a similarity of the image, so crop units give the image NME.

    Faces without both normalising points get NaN (and are left out of means), not a huge ratio.
    """
    d = torch.linalg.norm(target[:, pair[0]] - target[:, pair[1]], dim=-1)
    err = torch.linalg.norm(pred - target, dim=-1)
    m = mask.to(err.dtype)
    nme = (err * m).sum(-1) / m.sum(-1).clamp_min(1.0) / d.clamp_min(1e-6)
    usable = mask[:, pair[0]] & mask[:, pair[1]] & (d > 1e-6)
    return torch.where(usable, nme, torch.full_like(nme, float("nan")))


# ---------------------------------------------------------------- run


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def atomic_save(obj: Any, path: Path) -> None:
    """Write then rename, so a run killed mid-write never leaves a corrupt checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_samples(specs: list[DatasetSpec], cfg: TrainConfig) -> tuple[list[Sample], CleaningReport]:
    samples: list[Sample] = []
    report = CleaningReport(policy=cfg.data.policy)
    for spec in specs:
        if spec.scheme is None:
            spec = dataclasses.replace(spec, scheme=cfg.data.scheme)
        s, r = load_dataset(spec, policy=cfg.data.policy)
        samples += s
        report = report.merge(r)
    return samples, report


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


def checkpoint_payload(model: nn.Module, cfg: TrainConfig, scheme: PointScheme, **extra: Any) -> dict[str, Any]:
    m = cfg.model
    return {
        "model_name": m.name,
        "model_kwargs": dict(m.kwargs),
        "state_dict": model.state_dict(),
        "config": asdict(cfg),
        "scheme": scheme.to_dict(),
        "conventions": list(cfg.data.conventions),
        "normalisation": {"input_size": m.input_size, "channels": m.channels, "context": m.context,
                          "pixels": "uint8/255 -> [0,1]", "points": "(crop_px + 0.5) / input_size"},
        **extra,
    }


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


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train as configured; returns the path of the best checkpoint (by validation NME).

    Under ``torchrun --nproc_per_node N`` each rank trains on its own shard of
    every epoch (DistributedSampler) and DDP averages gradients; rank 0 alone
    writes logs and checkpoints.
    """
    rank, world = init_distributed()
    progress = progress and rank == 0
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + rank)  # ranks augment differently; DDP broadcasts rank 0's initial weights
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    scheme = load_scheme(cfg.data.scheme)
    if not cfg.data.train:
        raise ValueError("config has no training data (data.train)")
    if cfg.augment.flip > 0 and scheme.flip_index is None:  # refuse before loading: flips need a flip table
        raise SchemeError(f"scheme {scheme.name!r} has no flip table (flip_pairs): add flip_pairs to the scheme "
                          "or set augment.flip=0")

    train_samples, report = load_samples(cfg.data.train, cfg)
    if cfg.data.val:
        val_samples, vreport = load_samples(cfg.data.val, cfg)
        report = report.merge(vreport)
    else:
        train_samples, val_samples = split_by_group(train_samples, cfg.data.val_fraction, cfg.seed)
    train_samples = [s for s in train_samples for _ in range(max(1, cfg.data.repeat.get(s.convention, 1)))]
    if cfg.max_train_samples:
        train_samples = train_samples[: cfg.max_train_samples]
        val_samples = val_samples[: max(8, cfg.max_train_samples // 4)]
    (out / "cleaning_report.txt").write_text(report.summary() + "\n", encoding="utf-8")
    if progress:
        print(report.summary())
        print(f"train faces: {len(train_samples)}, validation faces: {len(val_samples)}")
    if rank == 0:
        save_config(cfg, out / "config.yaml")

    m = cfg.model
    kwargs = dict(m.kwargs)
    if len(cfg.data.conventions) > 1:
        kwargs["conventions"] = len(cfg.data.conventions)
        cfg.model.kwargs = kwargs  # the checkpoint rebuilds the same shape
    model = build_model(m.name, scheme.num_points, m.input_size, m.channels, **kwargs)
    flip_index = torch.tensor(scheme.flip_permutation()) if scheme.flip_index is not None else None
    if cfg.init_from:
        _init_weights(model, cfg.init_from, progress)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    core = model  # the unwrapped model: what checkpoints and validation use
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    o = cfg.optim
    loss_fn = LOSSES[o.loss]
    g = torch.Generator().manual_seed(cfg.seed + 1000 * rank)
    train_ds = LandmarkDataset(train_samples, cfg, scheme, train=True)
    sampler = DistributedSampler(train_ds, world, rank, shuffle=True, seed=cfg.seed, drop_last=True) if world > 1 else None
    train_loader = DataLoader(
        train_ds, batch_size=o.batch_size, shuffle=sampler is None, sampler=sampler,
        num_workers=cfg.workers, generator=g, drop_last=len(train_samples) > o.batch_size * world,
        persistent_workers=False,
    )
    val_loader = DataLoader(LandmarkDataset(val_samples, cfg, scheme, train=False), batch_size=64, num_workers=0)
    opt = _make_optimizer(model, o)
    sched = _make_scheduler(opt, o, len(train_loader))

    start_epoch, best, stale, rows = 1, float("inf"), 0, []
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and last_path.exists():
        ck = torch.load(last_path, map_location="cpu", weights_only=True)
        core.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler"):
            sched.load_state_dict(ck["scheduler"])
        start_epoch, best, stale, rows = ck["epoch"] + 1, ck["best_nme"], ck["stale"], ck["history"]
        torch.set_rng_state(ck["torch_rng"])
        g.set_state(ck["loader_rng"])
        if progress:
            print(f"resumed from {last_path} at epoch {start_epoch}")
    elif resume and progress:
        print(f"no checkpoint at {last_path}; starting fresh")
    if progress:
        print(f"model {m.name}: {count_parameters(core):,} parameters" + (f", {world} processes" if world > 1 else ""))

    seen: list[str] = []
    for epoch in range(start_epoch, o.epochs + 1):
        t0 = time.time()
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
            if epoch == start_epoch:
                seen = [train_samples[i].source for i in sampler]
        total, n = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{o.epochs}", disable=not progress, leave=False)
        for x, t, mk, fl, cv in bar:
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = total_loss(model(x), t, mk, o, fl, cv, flip_index)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if o.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            opt.step()
            if o.scheduler == "cosine":
                sched.step()
            total += float(loss.detach()) * len(x)
            n += len(x)
            bar.set_postfix(loss=f"{total / n:.5f}")
        val_loss, val_nme = evaluate_loader(core, val_loader, loss_fn, scheme.normalise)
        if o.scheduler == "plateau":
            sched.step(val_loss)
        row = {"epoch": epoch, "train_loss": total / max(n, 1), "val_loss": val_loss, "val_nme": val_nme,
               "lr": opt.param_groups[0]["lr"], "seconds": time.time() - t0}
        rows.append(row)
        improved = val_nme < best
        best, stale = (val_nme, 0) if improved else (best, stale + 1)
        if rank == 0:
            payload = checkpoint_payload(core, cfg, scheme, epoch=epoch, best_nme=best, val_nme=val_nme,
                                         history=rows, stale=stale)
            if improved:
                atomic_save(payload, best_path)
            payload.update(optimizer=opt.state_dict(), scheduler=sched.state_dict() if sched else None,
                           torch_rng=torch.get_rng_state(), loader_rng=g.get_state())
            atomic_save(payload, last_path)
            _write_history(rows, out)
        if progress:
            tqdm.write(f"epoch {epoch}: train {row['train_loss']:.5f} val {val_loss:.5f} "
                       f"NME {100 * val_nme:.2f}% lr {row['lr']:.2e} ({row['seconds']:.0f}s){' *' if improved else ''}")
        if o.early_stopping and stale >= o.early_stopping:
            if progress:
                print(f"early stopping: no improvement for {stale} epochs")
            break
    if world > 1:
        _finish_distributed(core, out, rank, world, seen)
    return best_path


def _init_weights(model: nn.Module, path: str, progress: bool) -> None:
    """Copy every tensor whose name and shape match; heads for another point count start fresh."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    taken = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(taken, strict=False)
    if progress:
        print(f"initialised {len(taken)}/{len(own)} tensors from {path}")


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


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a checkpoint alone (architecture, scheme and normalisation are inside)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    norm = ck["normalisation"]
    scheme = load_scheme_dict(ck["scheme"])
    model = build_model(ck["model_name"], scheme.num_points, norm["input_size"], norm["channels"], **ck["model_kwargs"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck


def load_scheme_dict(d: dict) -> PointScheme:
    from facepoints.schemes import scheme_from_dict

    return scheme_from_dict(d)


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    return load_config(TrainConfig, path, overrides)


def predict_checkpoint(
    path: str | Path, images: list[np.ndarray], boxes: list[np.ndarray], batch_size: int = 64
) -> tuple[np.ndarray, str, PointScheme]:
    """Image-pixel points from a checkpoint, with the same crop and denormalisation as the ONNX runtime."""
    model, ck = load_checkpoint(path)
    norm = ck["normalisation"]
    size, ch, ctx = norm["input_size"], norm["channels"], norm["context"]
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            xs, mats = [], []
            for img, box in zip(images[i:i + batch_size], boxes[i:i + batch_size]):
                x, mat = geometry.prepare_input(img, box, size, ctx, ch)
                xs.append(x)
                mats.append(mat)
            pts = model(torch.from_numpy(np.stack(xs)))["points"].numpy()
            for p, mat, img in zip(pts, mats, images[i:i + batch_size]):
                q = geometry.normalised_to_image(p, mat, size)
                out.append(geometry.clip_to_image(q, img.shape[1], img.shape[0]))
    return np.stack(out), str(ck["config"].get("name", Path(path).stem)), load_scheme_dict(ck["scheme"])
