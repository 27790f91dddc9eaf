"""Training losses (masked: invalid points carry neither error nor weight) and the validation NME, in torch.

Coordinates are normalised crop units, ``(crop_px + 0.5) / input_size``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from facepoints.models import cell_centres

if TYPE_CHECKING:
    from facepoints.recipe import OptimConfig

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _masked_mean(per_point: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid points only: masked points contribute neither error nor weight."""
    m = mask.to(per_point.dtype)
    return (per_point * m).sum() / m.sum().clamp_min(1.0)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _masked_mean(((pred - target) ** 2).mean(-1), mask)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _masked_mean((pred - target).abs().mean(-1), mask)


def wing_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, w: float = 0.04,
              eps: float = 0.008) -> torch.Tensor:
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


def star_loss(heatmaps: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eigen_weight: float) -> torch.Tensor:
    """STAR (Zhou et al., CVPR 2023): each error measured in units of its own heatmap's spread, along its axes.

    A jaw point's heatmap spreads along the contour, where annotators place
    it differently; an error of the same length costs less along that line
    than across it, so the model stops chasing annotation noise. This is the
    Mahalanobis form, sqrt(e' S^-1 e) through a smooth L1, with S the
    heatmap's covariance: no eigendecomposition, whose gradient is unbounded
    for round heatmaps. ``eigen_weight`` times trace(S) keeps the spread from
    growing to make every error cheap. Units: coordinates in [-1, 1] as the paper's.
    """
    h, w = heatmaps.shape[-2:]
    xs, ys = 2 * cell_centres(w, heatmaps.device) - 1, 2 * cell_centres(h, heatmaps.device) - 1
    px, py = heatmaps.sum(-2), heatmaps.sum(-1)  # marginals (N, K, w), (N, K, h)
    mx, my = (px * xs).sum(-1), (py * ys).sum(-1)
    dx, dy = xs - mx.unsqueeze(-1), ys - my.unsqueeze(-1)
    unbiased = (1 - (heatmaps**2).sum((-2, -1))).clamp_min(1e-3)
    sxx, syy = (px * dx**2).sum(-1) / unbiased, (py * dy**2).sum(-1) / unbiased
    sxy = (heatmaps * dy.unsqueeze(-1) * dx.unsqueeze(-2)).sum((-2, -1)) / unbiased
    ex, ey = 2 * target[..., 0] - 1 - mx, 2 * target[..., 1] - 1 - my
    det = (sxx * syy - sxy**2).clamp_min(1e-8)
    d = torch.sqrt((syy * ex**2 - 2 * sxy * ex * ey + sxx * ey**2) / det + 1e-8)
    per = nn.functional.smooth_l1_loss(d, torch.zeros_like(d), reduction="none") + eigen_weight * (sxx + syy)
    return _masked_mean(per, mask)


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
    """Coordinate loss + confidence, heatmap and STAR terms.

    A model with a ``point_offset`` adds each sample's convention offset
    (mirrored for mirrored samples) to its raw points, so the heatmaps learn
    one symmetric, convention-free face (see models.HeatmapNet).
    """
    heat_target = star_target = target
    if "point_offset" in out:
        off = applied_offset(out["point_offset"], conv, flipped, flip_index)
        out = {**out, "points": out["raw_points"] + off}
        heat_target, star_target = target - off.detach(), target - off  # STAR alone may teach the offsets
    loss = o.coord_weight * LOSSES[o.loss](out["points"], target, mask)
    if o.star_weight:
        loss = loss + o.star_weight * star_loss(out["heatmaps"], star_target, mask, o.star_eigen_weight)
    if "score_logits" in out and o.score_weight:
        loss = loss + o.score_weight * score_loss(out, target, mask, o.score_tau)
    if "heatmaps" in out and o.heatmap_weight:
        loss = loss + o.heatmap_weight * heatmap_loss(out["heatmaps"], heat_target, mask, o.heatmap_sigma)
    return loss


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
