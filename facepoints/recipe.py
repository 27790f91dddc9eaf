"""A training run's config: data, model, optimiser and augmentation, as dataclasses read from YAML.

``load_train_config`` reads a config with its ``base:`` chain and
``key.sub=value`` overrides (``facepoints.config``); ``check_config``
refuses settings that cannot train before any data is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from facepoints.augment import AugmentConfig
from facepoints.config import ConfigError, load_config, path_field
from facepoints.datasets import DatasetSpec
from facepoints.losses import LOSSES
from facepoints.schemes import PointScheme, SchemeError


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
    distill_weight: float = 1.0  # weight of the teacher's points (with ``teacher``), in the coordinate loss's units
    coord_weight: float = 1.0  # weight of the coordinate loss (``loss``); 0 leaves the points to the STAR term
    star_weight: float = 0.0  # weight of the STAR term (losses.star_loss), 0 = off
    star_eigen_weight: float = 1.0  # STAR's restriction on the heatmaps' spread (trace of the covariance)


@dataclass
class TrainConfig:
    name: str = "run"
    out_dir: str = "runs/run"
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    workers: int = 1  # DataLoader worker processes for decoding/augmentation
    max_train_samples: int = 0  # 0 = all; small values make smoke runs
    channels_last: bool = False  # NHWC tensors: ~1.5x faster training of depthwise nets on x86 CPUs
    # checkpoint whose same-shaped weights start this run (e.g. a 68-point model for 15 points)
    init_from: str = path_field("")
    teacher: str = path_field("")  # trained checkpoint whose points are extra targets (facepoints.distill)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def check_config(cfg: TrainConfig, scheme: PointScheme) -> None:
    """Refuse settings that cannot train, before any data is read."""
    o = cfg.optim
    if o.epochs < 1:
        raise ConfigError(f"optim.epochs must be at least 1, not {o.epochs}")
    if o.batch_size < 1:
        raise ConfigError(f"optim.batch_size must be at least 1, not {o.batch_size}")
    if not (o.lr >= 0 and math.isfinite(o.lr)):
        raise ConfigError(f"optim.lr must be a number >= 0, not {o.lr}")
    if o.loss not in LOSSES:
        raise ConfigError(f"optim.loss {o.loss!r} is not one of {sorted(LOSSES)}")
    if o.coord_weight < 0 or o.star_weight < 0 or (o.coord_weight == 0 and o.star_weight == 0):
        raise ConfigError("optim.coord_weight and optim.star_weight must be >= 0, and one of them > 0")
    if o.star_weight and cfg.model.name != "heatmap":
        raise ConfigError(f"optim.star_weight needs a heatmap model (model.name: heatmap), not {cfg.model.name!r}")
    if not cfg.data.train:
        raise ConfigError("config has no training data (data.train)")
    if not cfg.data.val and not 0 < cfg.data.val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be between 0 and 1, not {cfg.data.val_fraction}")
    if cfg.augment.flip > 0 and scheme.flip_index is None:  # refuse before loading: flips need a flip table
        raise SchemeError(f"scheme {scheme.name!r} has no flip table (flip_pairs): add flip_pairs to the scheme "
                          "or set augment.flip=0")


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    return load_config(TrainConfig, path, overrides)
