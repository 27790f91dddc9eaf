"""Training losses and the validation NME (torch): masks, the heatmap regulariser, STAR, mirrored convention offsets."""

from __future__ import annotations

import pytest
import torch

from facepoints.losses import LOSSES, heatmap_loss, nme_batch, star_loss


def test_masked_points_do_not_enter_the_loss() -> None:
    pred = torch.rand(2, 5, 2)
    target = pred.clone()
    mask = torch.ones(2, 5, dtype=torch.bool)
    target[0, 3] += 10.0  # a huge error on a masked point
    mask[0, 3] = False
    for name, fn in LOSSES.items():
        assert float(fn(pred, target, mask)) == pytest.approx(0.0, abs=1e-7), name
        mask[0, 3] = True
        assert float(fn(pred, target, mask)) > 0.1, name
        mask[0, 3] = False
    pred.requires_grad_(True)
    LOSSES["mse"](pred, target + 0.1, mask).backward()
    assert float(pred.grad[0, 3].abs().sum()) == 0.0


def _gaussian_heatmap(centre: tuple[float, float], sx: float, sy: float, side: int = 24) -> torch.Tensor:
    """(1, 1, side, side) normalised heatmap: a Gaussian of sigmas sx, sy (normalised units) at ``centre``."""
    from facepoints.models import cell_centres

    c = cell_centres(side)
    g = torch.exp(-0.5 * ((c[None, :] - centre[0]) / sx) ** 2 - 0.5 * ((c[:, None] - centre[1]) / sy) ** 2)
    return (g / g.sum()).view(1, 1, side, side)


def test_heatmap_regulariser_prefers_one_peak_at_the_point_and_ignores_masked_points() -> None:
    h = w = 16
    target = torch.tensor([[[0.3, 0.6], [0.7, 0.2]]])
    mask = torch.ones(1, 2, dtype=torch.bool)

    def peak(x: float, y: float) -> torch.Tensor:
        return _gaussian_heatmap((x, y), 1 / w, 1 / h, w)[0, 0]  # sigma: one cell

    exact = torch.stack([peak(0.3, 0.6), peak(0.7, 0.2)])[None]
    shifted = torch.stack([peak(0.3 + 3 / w, 0.6), peak(0.7, 0.2)])[None]
    # two peaks with the right mean: soft-argmax alone would call this perfect
    split = torch.stack([(peak(0.3 - 4 / w, 0.6) + peak(0.3 + 4 / w, 0.6)) / 2, peak(0.7, 0.2)])[None]
    flat = torch.full((1, 2, h, w), 1.0 / (h * w))
    loss = {k: float(heatmap_loss(v, target, mask, 1.0)) for k, v in
            {"exact": exact, "shifted": shifted, "split": split, "flat": flat}.items()}
    assert loss["exact"] < 1e-6 and loss["exact"] < loss["shifted"] and loss["exact"] < loss["split"] < loss["flat"]
    mask[0, 0] = False  # the wrong heatmap is on a masked point: no loss, no gradient
    shifted.requires_grad_(True)
    out = heatmap_loss(shifted, target, mask, 1.0)
    out.backward()
    assert float(out.detach()) < 1e-6 and float(shifted.grad[0, 0].abs().sum()) == 0.0


def test_star_charges_an_error_along_a_long_heatmap_less_than_across_it() -> None:
    """A heatmap spread along x (a jaw point's contour, say): the same error costs less along x than along y,
    a round heatmap charges both alike, and the error is measured in units of the heatmap's own spread."""
    mask = torch.ones(1, 1, dtype=torch.bool)
    long_x = _gaussian_heatmap((0.5, 0.5), 0.12, 0.03)
    along = float(star_loss(long_x, torch.tensor([[[0.55, 0.5]]]), mask, eigen_weight=0.0))
    across = float(star_loss(long_x, torch.tensor([[[0.5, 0.55]]]), mask, eigen_weight=0.0))
    assert 0 < along < across / 4
    round_ = _gaussian_heatmap((0.5, 0.5), 0.05, 0.05)
    x = float(star_loss(round_, torch.tensor([[[0.6, 0.5]]]), mask, eigen_weight=0.0))
    y = float(star_loss(round_, torch.tensor([[[0.5, 0.6]]]), mask, eigen_weight=0.0))
    assert x == pytest.approx(y, rel=1e-4)
    assert x == pytest.approx(2 - 0.5, rel=0.05)  # 2 sigmas away: smooth L1 of 2 is 1.5
    spread = float(star_loss(round_, torch.tensor([[[0.5, 0.5]]]), mask, eigen_weight=1.0))
    var = 0.05**2 + (1 / 24) ** 2 / 12  # a sampled Gaussian's variance: sigma^2 plus a cell's (Sheppard)
    assert spread == pytest.approx(2 * 4 * var, rel=0.02)  # the covariance's trace, in [-1, 1] units


def test_star_gradients_stay_finite_for_round_and_one_cell_heatmaps_and_skip_masked_points() -> None:
    one_cell = torch.zeros(1, 1, 24, 24)
    one_cell[0, 0, 12, 12] = 1.0
    heat = torch.cat([_gaussian_heatmap((0.4, 0.6), 0.05, 0.05), one_cell], dim=1).requires_grad_(True)
    target = torch.tensor([[[0.45, 0.6], [0.9, 0.1]]])
    mask = torch.tensor([[True, False]])
    star_loss(heat, target, mask, eigen_weight=1.0).backward()
    assert torch.isfinite(heat.grad).all() and float(heat.grad[0, 0].abs().sum()) > 0
    assert float(heat.grad[0, 1].abs().sum()) == 0.0
    mask[0, 1] = True
    heat.grad = None
    loss = star_loss(heat, target, mask, eigen_weight=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(heat.grad).all()


def test_star_alone_still_teaches_the_convention_offsets() -> None:
    """With the coordinate loss off, the points' only teacher is STAR: the offsets must get its gradient."""
    from facepoints.losses import total_loss
    from facepoints.recipe import OptimConfig

    o = OptimConfig(loss="l1", score_weight=0.0, heatmap_weight=0.0, coord_weight=0.0, star_weight=1.0)
    heat = _gaussian_heatmap((0.5, 0.5), 0.05, 0.05)
    table = torch.zeros(2, 1, 2, requires_grad=True)
    out = {"points": torch.full((1, 1, 2), 0.5), "raw_points": torch.full((1, 1, 2), 0.5), "point_offset": table,
           "heatmaps": heat}
    target = torch.tensor([[[0.55, 0.5]]])
    loss = total_loss(out, target, torch.ones(1, 1, dtype=torch.bool), o, None, torch.tensor([1]), None)
    loss.backward()
    assert float(table.grad[1, 0, 0]) < 0 and float(table.grad[0].abs().sum()) == 0.0  # moves convention 1 right


def test_convention_offsets_are_mirrored_for_mirrored_samples() -> None:
    """Two conventions, the second drawing every point shifted by its own (asymmetric) offset.

    A mirrored face carries the mirror image of that habit (point k was drawn
    as point flip[k], x negated). The loss must be zero for a network that
    answers the true feature plus exactly that, non-zero when the flip flags
    are ignored, and a convention must get gradient only from its own faces.
    """
    from facepoints.losses import total_loss
    from facepoints.recipe import OptimConfig

    o = OptimConfig(loss="l1", score_weight=0.0, heatmap_weight=0.0)
    feature = torch.rand(4, 3, 2)
    flip_index = torch.tensor([2, 1, 0])
    table = torch.zeros(2, 3, 2)
    table[1] = torch.tensor([[0.02, 0.0], [0.01, 0.01], [0.0, -0.01]])
    conv = torch.tensor([1, 1, 0, 1])
    flipped = torch.tensor([0.0, 1.0, 0.0, 1.0])
    mirrored = table[1][flip_index] * torch.tensor([-1.0, 1.0])
    target = feature + torch.stack([table[1], mirrored, table[0], mirrored])
    mask = torch.ones(4, 3, dtype=torch.bool)
    param = table.clone().requires_grad_(True)
    out = {"points": feature + param[0], "raw_points": feature, "point_offset": param}
    assert float(total_loss(out, target, mask, o, flipped, conv, flip_index).detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(total_loss(out, target, mask, o, None, conv, flip_index).detach()) > 0.003
    assert float(total_loss(out, target, mask, o, flipped, None, flip_index).detach()) > 0.003
    only_second = torch.ones(4, dtype=torch.long)
    total_loss(out, target + 0.05, mask, o, flipped, only_second, flip_index).backward()
    assert float(param.grad[0].abs().sum()) == 0.0 and float(param.grad[1].abs().sum()) > 0.0


def test_nme_batch_hand_computed() -> None:
    t = torch.zeros(1, 3, 2)
    t[0, 1] = torch.tensor([10.0, 0.0])
    p = t.clone()
    p[0, 2] += torch.tensor([3.0, 4.0])  # error 5 on one of three points
    nme = nme_batch(p, t, torch.ones(1, 3, dtype=torch.bool), (0, 1))
    assert float(nme) == pytest.approx(5 / 3 / 10)
