"""Training augmentation for face crops, and a preview to check it by eye.

Why: landmark sets are small, so the model must see faces flipped, turned,
shifted, re-lit, blurred and partly covered, and cropped from boxes that
differ from the tight landmark box (real face detectors disagree). Every
geometric change must move the points exactly with the pixels, in the
convention of ``facepoints.geometry`` (pixel centres at integers); a flip
must also swap left/right labels, or the model learns mirrored points. The
transforms are Albumentations; this module adds the label swap, keeps every
point (including invalid and off-image ones), and makes runs reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import albumentations as A
import cv2
import numpy as np

from facepoints.datasets.core import Sample
from facepoints.geometry import apply_affine, crop_matrix, tight_box, warp_crop
from facepoints.schemes import PointScheme, SchemeError

__all__ = ["AugmentConfig", "Augmenter", "build_augmenter", "jitter_box", "preview_grid"]


@dataclass
class AugmentConfig:
    flip: float = 0.5  # probability of a horizontal flip (with point-index permutation)
    rotate: float = 15.0  # max degrees for A.Rotate (seed recipe: +-15)
    rotate_p: float = 0.5
    shift_scale_rotate_p: float = 0.5  # A.Affine: translate +-6%, scale 0.9-1.1, rotate +-10
    brightness_contrast_p: float = 0.5
    blur_p: float = 0.2  # A.GaussianBlur
    occlusion_p: float = 0.0  # A.CoarseDropout ("partial obstructions"), off in the seed recipe
    box_shift: float = 0.0  # face-box jitter: centre shift as fraction of box size (uniform +-)
    box_scale: float = 0.0  # face-box jitter: relative scale change (uniform +-)

    def __post_init__(self) -> None:
        for name in ("flip", "rotate_p", "shift_scale_rotate_p", "brightness_contrast_p", "blur_p", "occlusion_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name} is a probability in [0, 1], not {value}")
        if not 0.0 <= self.rotate <= 180.0:
            raise ValueError(f"AugmentConfig.rotate must be in [0, 180] degrees, not {self.rotate}")
        _check_jitter(self.box_shift, self.box_scale)


def _check_jitter(shift: float, scale: float) -> None:
    if not 0.0 <= shift:
        raise ValueError(f"box shift must be >= 0, not {shift}")
    if not 0.0 <= scale < 1.0:
        raise ValueError(f"box scale must be in [0, 1), not {scale}")


def jitter_box(box: np.ndarray, rng: np.random.Generator, shift: float, scale: float) -> np.ndarray:
    """Randomly move and resize a box (x0, y0, x1, y1), so the model tolerates different face detectors.

    The centre moves by up to ``shift`` times the box width (x) and height (y);
    the size changes by a factor in ``[1 - scale, 1 + scale]`` (aspect kept).
    Always draws three numbers from ``rng``, so zero jitter keeps streams aligned.
    """
    _check_jitter(shift, scale)
    b = np.asarray(box, dtype=np.float64)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"box must be four finite numbers (x0, y0, x1, y1), got {b!r}")
    x0, y0, x1, y1 = b
    w, h = x1 - x0, y1 - y0
    if w < 0 or h < 0:
        raise ValueError(f"box has x1 < x0 or y1 < y0: {b!r}")
    dx, dy = rng.uniform(-shift, shift, size=2)
    factor = 1.0 + rng.uniform(-scale, scale)
    cx, cy = (x0 + x1) / 2.0 + dx * w, (y0 + y1) / 2.0 + dy * h
    hw, hh = w * factor / 2.0, h * factor / 2.0
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


def _keypoint_params() -> A.KeypointParams:
    # remove_invisible=False: points leaving the image (or under a dropout hole)
    # must keep their index, or the (K, 2) arrays would lose their meaning.
    return A.KeypointParams(format="xy", remove_invisible=False)


def _pipeline_transforms(cfg: AugmentConfig) -> list[A.BasicTransform]:
    """The non-flip transforms, in order; those with p == 0 are left out."""
    border = cv2.BORDER_REPLICATE  # as geometry.warp_crop: no black frames that teach edges
    candidates: list[tuple[float, A.BasicTransform]] = [
        (cfg.rotate_p, A.Rotate(limit=(-cfg.rotate, cfg.rotate), border_mode=border, p=cfg.rotate_p)),
        (
            cfg.shift_scale_rotate_p,
            A.Affine(
                translate_percent=(-0.06, 0.06),
                scale=(0.9, 1.1),
                rotate=(-10.0, 10.0),
                border_mode=border,
                p=cfg.shift_scale_rotate_p,
            ),
        ),
        (
            cfg.brightness_contrast_p,
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=cfg.brightness_contrast_p),
        ),
        (cfg.blur_p, A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5), p=cfg.blur_p)),
        (
            cfg.occlusion_p,
            A.CoarseDropout(
                num_holes_range=(1, 2),
                hole_height_range=(0.1, 0.3),
                hole_width_range=(0.1, 0.3),
                fill="random_uniform",
                p=cfg.occlusion_p,
            ),
        ),
    ]
    return [t for p, t in candidates if p > 0]


@dataclass
class Augmenter:
    """Augments a square face crop and its points; build it with ``build_augmenter``.

    ``last_flipped`` tells whether the flip fired in the latest call.
    """

    cfg: AugmentConfig
    flip_index: np.ndarray | None  # scheme permutation; None when flips are off
    pipeline: A.Compose | None  # everything but the flip; None when all are off
    flipper: A.Compose
    rng: np.random.Generator  # decides the flip
    last_flipped: bool = field(default=False)
    # the generators Albumentations draws from (see _seed_compose); None when the pipeline is off
    album_rngs: tuple[np.random.Generator, random.Random] | None = None

    def reseed(self, seed: int) -> None:
        """Restart all random streams (e.g. per DataLoader worker, which otherwise share one stream)."""
        flip_seed, album_seed = _split_seed(seed)
        self.rng = np.random.default_rng(flip_seed)
        if self.pipeline is not None:
            self.album_rngs = _seed_compose(self.pipeline, album_seed)

    def random_state(self) -> dict:
        """Every random stream's state (plain Python values), so a resumed run draws what it would have drawn."""
        album = None
        if self.album_rngs is not None:
            album = {"numpy": self.album_rngs[0].bit_generator.state, "python": self.album_rngs[1].getstate()}
        return {"flip": self.rng.bit_generator.state, "album": album}

    def set_random_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["flip"]
        if self.album_rngs is not None and state.get("album"):
            self.album_rngs[0].bit_generator.state = state["album"]["numpy"]
            self.album_rngs[1].setstate(state["album"]["python"])

    def __call__(
        self, image: np.ndarray, points: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(S, S, 3) uint8 crop, (K, 2) crop-pixel points (NaN where invalid), (K,) mask -> the same, augmented."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        pts = np.asarray(points, dtype=np.float32)
        msk = np.asarray(mask, dtype=bool)
        k = len(msk)
        if pts.shape != (k, 2):
            raise ValueError(f"points must be (K, 2) with K = len(mask) = {k}, got {pts.shape}")
        invalid = ~msk | ~np.isfinite(pts).all(axis=1)
        kps = np.where(invalid[:, None], np.float32(0.0), pts)

        flipped = bool(self.rng.random() < self.cfg.flip)
        self.last_flipped = flipped
        if flipped:
            assert self.flip_index is not None  # build_augmenter guarantees it when cfg.flip > 0
            if len(self.flip_index) != k:
                raise ValueError(f"flip table is for {len(self.flip_index)} points, got {k}")
            out = self.flipper(image=image, keypoints=kps)
            image, kps = out["image"], np.asarray(out["keypoints"], dtype=np.float32)
        if self.pipeline is not None:
            out = self.pipeline(image=image, keypoints=kps)
            image, kps = out["image"], np.asarray(out["keypoints"], dtype=np.float32)
        if kps.shape != (k, 2):
            raise RuntimeError(f"albumentations returned {kps.shape} keypoints for {k}; points would be lost")

        kps = kps.copy()
        kps[invalid] = np.nan
        if flipped:
            assert self.flip_index is not None
            kps, msk = kps[self.flip_index], msk[self.flip_index]
        return np.ascontiguousarray(image, dtype=np.uint8), kps, msk.copy()


def _split_seed(seed: int) -> tuple[int, int]:
    """Two independent seeds: one for the flip draws, one for Albumentations."""
    a, b = np.random.SeedSequence(seed).generate_state(2)
    return int(a), int(b)


def _seed_compose(compose: A.Compose, seed: int) -> tuple[np.random.Generator, random.Random]:
    # Compose(seed=s) in albumentations 2.0.8 gives EACH transform its own
    # generator seeded with the same s, so transforms with equal p fire
    # together on the first call. One shared generator keeps them independent.
    rngs = np.random.default_rng(seed), random.Random(seed)
    compose.set_random_state(*rngs)
    return rngs


def build_augmenter(cfg: AugmentConfig, scheme: PointScheme, seed: int = 0) -> Augmenter:
    """The augmenter for ``cfg``; same seed, same outputs.

    Raises ``SchemeError`` when ``cfg.flip > 0`` and the scheme has no flip
    table: flipping without swapping labels would teach mirrored points.
    """
    try:
        flip_index = scheme.flip_permutation() if cfg.flip > 0 else None
    except SchemeError as e:
        raise SchemeError(f"{e}: add flip_pairs to the scheme's YAML file, or set augment.flip: 0 "
                          f"(-o augment.flip=0)") from None
    flip_seed, album_seed = _split_seed(seed)
    transforms = _pipeline_transforms(cfg)
    pipeline, album_rngs = None, None
    if transforms:
        pipeline = A.Compose(transforms, keypoint_params=_keypoint_params(), seed=album_seed)
        album_rngs = _seed_compose(pipeline, album_seed)
    # Albumentations maps x -> W - 1 - x on a horizontal flip: the pixel-centre convention we use.
    flipper = A.Compose([A.HorizontalFlip(p=1.0)], keypoint_params=_keypoint_params())
    return Augmenter(
        cfg=cfg,
        flip_index=flip_index,
        pipeline=pipeline,
        flipper=flipper,
        rng=np.random.default_rng(flip_seed),
        album_rngs=album_rngs,
    )


_REGION_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _augmented_crop(sample: Sample, cfg: AugmentConfig, scheme: PointScheme, augmenter: Augmenter,
                    box_rng: np.random.Generator, size: int,
                    context: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sample through the training path: tight box, box jitter, crop, augmenter."""
    if sample.points.shape != (scheme.num_points, 2):
        raise ValueError(f"{sample.source}: {sample.points.shape[0]} points, "
                         f"scheme {scheme.name} has {scheme.num_points}")
    box = jitter_box(tight_box(sample.points, sample.mask), box_rng, cfg.box_shift, cfg.box_scale)
    m = crop_matrix(box, size, context)
    crop = warp_crop(sample.image, m, size)
    pts = apply_affine(sample.points, m).astype(np.float32)
    pts[~sample.mask] = np.nan
    return augmenter(crop, pts, sample.mask)


def _draw_points(ax, pts: np.ndarray, mask: np.ndarray, scheme: PointScheme) -> None:
    """Points coloured by region, others white, and a star on ``scheme.normalise[0]``."""
    in_region = np.zeros(len(mask), dtype=bool)
    for r, (region, idx) in enumerate(scheme.regions.items()):
        sel = np.array([j for j in idx if mask[j]], dtype=np.int64)
        in_region[list(idx)] = True
        if len(sel):
            ax.scatter(pts[sel, 0], pts[sel, 1], s=6, c=_REGION_COLOURS[r % len(_REGION_COLOURS)], label=region,
                       linewidths=0)
    rest = np.flatnonzero(mask & ~in_region)
    if len(rest):
        ax.scatter(pts[rest, 0], pts[rest, 1], s=6, c="white", label="other", linewidths=0)
    marked = scheme.normalise[0]
    if mask[marked]:
        ax.scatter(pts[marked, 0], pts[marked, 1], s=90, marker="*", c="yellow", edgecolors="black",
                   linewidths=0.6, label=f"{scheme.points[marked]} ({marked})")


def preview_grid(
    samples: list[Sample],
    cfg: AugmentConfig,
    scheme: PointScheme,
    out_path: str | Path,
    *,
    n: int = 16,
    size: int = 128,
    context: float = 1.25,
    seed: int = 0,
) -> Path:
    """Save a PNG grid of ``n`` augmented crops with their points, to check that points follow the pixels.

    Each sample goes through the training path: tight box, box jitter, crop,
    augmenter. Points are coloured by region; the star is point
    ``scheme.normalise[0]`` (for ibug68 the outer corner of the image-left
    eye), which must sit on the image-left eye even in panels titled "flipped".
    Samples are reused in turn when ``n`` exceeds their number.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not samples:
        raise ValueError("preview_grid needs at least one sample")
    if n < 1:
        raise ValueError(f"n must be >= 1, not {n}")
    augmenter = build_augmenter(cfg, scheme, seed)
    box_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cell_inches, dpi = 2.0, 100
    fig = Figure(figsize=(cols * cell_inches, rows * cell_inches), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.94, wspace=0.04, hspace=0.14)
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        image, pts, mask = _augmented_crop(samples[i % len(samples)], cfg, scheme, augmenter, box_rng, size, context)
        ax.imshow(image)
        _draw_points(ax, pts, mask, scheme)
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(size - 0.5, -0.5)
        ax.set_title("flipped" if augmenter.last_flipped else "", fontsize=8, pad=2)
        if i == 0:
            ax.legend(loc="lower left", fontsize=5, framealpha=0.6, markerscale=1.0, handletextpad=0.2)
    marked = scheme.normalise[0]
    fig.suptitle(f"{scheme.name}: star = point {marked} ({scheme.points[marked]}), image-left", fontsize=8)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out
