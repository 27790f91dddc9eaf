"""Training losses and the validation NME (torch): masks, the heatmap regulariser, mirrored convention offsets."""

from __future__ import annotations

import pytest
import torch

from facepoints.losses import LOSSES, heatmap_loss, nme_batch


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


def test_heatmap_regulariser_prefers_one_peak_at_the_point_and_ignores_masked_points() -> None:
    h = w = 16
    target = torch.tensor([[[0.3, 0.6], [0.7, 0.2]]])
    mask = torch.ones(1, 2, dtype=torch.bool)

    def peak(x: float, y: float, sigma: float = 1.0) -> torch.Tensor:
        xs, ys = (torch.arange(w) + 0.5) / w, (torch.arange(h) + 0.5) / h
        g = torch.exp(-0.5 * (((xs - x) * w / sigma) ** 2)[None] - 0.5 * (((ys - y) * h / sigma) ** 2)[:, None])
        return g / g.sum()

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
