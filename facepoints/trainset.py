"""Training and validation faces: configured datasets -> cleaned samples -> crops, targets and masks as tensors.

A run is refused here, before training, when its data cannot give a
meaningful validation NME (no usable training or validation faces).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from facepoints import geometry
from facepoints.augment import build_augmenter, jitter_box
from facepoints.datasets import CleaningReport, DatasetSpec, Sample, load_dataset, split_by_group
from facepoints.errors import UserError
from facepoints.recipe import TrainConfig
from facepoints.schemes import PointScheme


class TrainingError(UserError):
    """A run that cannot give a meaningful result (no usable validation faces, NaN NME); nothing is claimed."""


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

    def random_state(self) -> dict[str, Any]:
        """The augmentation streams drawn in this process (with ``workers: 0``, the only ones), for resuming."""
        aug = self._augmenter()
        return {"seed": self._aug_seed, "jitter": self._rng.bit_generator.state, "augmenter": aug.random_state()}

    def set_random_state(self, state: dict[str, Any]) -> None:
        aug = self._augmenter()
        if state.get("seed") != self._aug_seed:  # another torch seed: these streams would be rebuilt anyway
            return
        self._rng.bit_generator.state = state["jitter"]
        aug.set_random_state(state["augmenter"])

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def usable_for_nme(samples: list[Sample], pair: tuple[int, int]) -> int:
    """How many faces have both normalising points, apart: the faces a validation NME can be computed on."""
    n = 0
    for s in samples:
        if s.mask[pair[0]] and s.mask[pair[1]] and np.linalg.norm(s.points[pair[0]] - s.points[pair[1]]) > 1e-6:
            n += 1
    return n


def prepare_samples(cfg: TrainConfig, scheme: PointScheme, out: Path, progress: bool
                    ) -> tuple[list[Sample], list[Sample]]:
    """(training, validation) faces as configured; refuses a run with no usable training or validation faces."""
    train_samples, report = load_samples(cfg.data.train, cfg)
    if cfg.data.val:
        val_samples, vreport = load_samples(cfg.data.val, cfg)
        report = report.merge(vreport)
    elif train_samples:
        train_samples, val_samples = split_by_group(train_samples, cfg.data.val_fraction, cfg.seed)
    else:
        val_samples = []
    train_samples = [s for s in train_samples for _ in range(max(1, cfg.data.repeat.get(s.convention, 1)))]
    if cfg.max_train_samples:
        train_samples = train_samples[: cfg.max_train_samples]
        val_samples = val_samples[: max(8, cfg.max_train_samples // 4)]
    (out / "cleaning_report.txt").write_text(report.summary() + "\n", encoding="utf-8")
    if progress:
        print(report.summary())
        print(f"train faces: {len(train_samples)}, validation faces: {len(val_samples)}")
    where = f"see {out / 'cleaning_report.txt'}"
    if not train_samples:
        raise TrainingError(f"no usable training faces in data.train ({where})")
    pair = scheme.normalise
    if usable_for_nme(val_samples, pair) == 0:
        names = f"{scheme.points[pair[0]]}, {scheme.points[pair[1]]}"
        raise TrainingError(f"no usable validation faces: none of the {len(val_samples)} has both normalising points "
                            f"({names}) valid and apart, so no checkpoint could be chosen ({where})")
    return train_samples, val_samples
