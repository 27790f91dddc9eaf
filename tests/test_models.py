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
