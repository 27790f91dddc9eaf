"""Contracts every registered model architecture keeps (facepoints.models.MODELS)."""

from __future__ import annotations

import pytest
import torch

from facepoints.models import MODELS, build_model, count_parameters


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_architecture_maps_crops_to_normalised_points(name: str, channels: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, 15, 64, channels).eval()
    with torch.no_grad():
        out = model(torch.rand(3, channels, 64, 64))
    assert out["points"].shape == (3, 15, 2) and torch.isfinite(out["points"]).all()
    if "scores" in out:
        assert out["scores"].shape == (3, 15) and ((out["scores"] >= 0) & (out["scores"] <= 1)).all()
    assert count_parameters(model) > 0
    model.train()  # every architecture trains: gradients reach its first layer
    loss = model(torch.rand(2, channels, 64, 64))["points"].square().mean()
    loss.backward()
    first = next(p for p in model.parameters() if p.requires_grad)
    assert first.grad is not None and torch.isfinite(first.grad).all()


def test_unknown_architecture_is_refused_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="baseline"):
        build_model("nope", 68, 64, 1)


def test_a_stride_2_heatmap_doubles_the_grid_and_leaves_stride_4_models_as_they_were() -> None:
    kw = {"widths": [8, 16, 16, 24, 32], "decoder": 16}
    fine = build_model("heatmap", 68, 96, 3, heatmap_stride=2, **kw).train()
    out = fine(torch.rand(2, 3, 96, 96))
    assert out["heatmaps"].shape == (2, 68, 48, 48) and out["points"].shape == (2, 68, 2)
    assert float(out["points"].min()) > 0 and float(out["points"].max()) < 1
    coarse = build_model("heatmap", 68, 96, 3, **kw)
    assert not any(k.startswith("stem_lateral") for k in coarse.state_dict())  # shipped checkpoints still load
    assert set(fine.state_dict()) - set(coarse.state_dict()) == {
        k for k in fine.state_dict() if k.startswith("stem_lateral")}
    with pytest.raises(ValueError, match="heatmap_stride"):
        build_model("heatmap", 68, 96, 3, heatmap_stride=2, patch_stem=True, **kw)
