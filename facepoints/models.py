"""Landmark networks in plain torch, found by name in ``MODELS``.

Every model maps a batch of crops (N, C, S, S) in [0, 1] to a dict with
``points`` (N, K, 2) in normalised crop coordinates (see geometry) and, when
the model has them, per-point ``scores`` in [0, 1]. That one contract lets
training, evaluation and ONNX export treat all models alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ModelBuilder = Callable[..., nn.Module]
MODELS: dict[str, ModelBuilder] = {}


def register(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def wrap(fn: ModelBuilder) -> ModelBuilder:
        MODELS[name] = fn
        return fn

    return wrap


def build_model(name: str, num_points: int, input_size: int, channels: int, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](num_points=num_points, input_size=input_size, channels=channels, **kwargs)


class BaselineCNN(nn.Module):
    """The seed write-up's network: conv + pool blocks, dropout FC layers, direct coordinate regression."""

    def __init__(
        self,
        num_points: int,
        input_size: int = 64,
        channels: int = 1,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        hidden: tuple[int, ...] = (512, 256),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        side = input_size // 2 ** len(widths)
        fc: list[nn.Module] = [nn.Flatten()]
        n = c * side * side
        for h in hidden:
            fc += [nn.Linear(n, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            n = h
        fc.append(nn.Linear(n, num_points * 2))
        self.head = nn.Sequential(*fc)
        self.num_points = num_points

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.features(x))
        return {"points": out.view(-1, self.num_points, 2) + 0.5}  # regress offsets from the crop centre


@register("baseline")
def baseline(num_points: int, input_size: int, channels: int, **kwargs) -> nn.Module:
    return BaselineCNN(num_points, input_size, channels, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- the default model


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: cheap on CPU, and residual so a deep stack trains from scratch."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.block = nn.Sequential(
            _conv_bn(cin, mid, 1) if expand != 1 else nn.Identity(),
            _conv_bn(mid, mid, 3, stride, groups=mid),
            _conv_bn(mid, cout, 1, act=False),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class HeatmapNet(nn.Module):
    """Compact inverted-residual backbone, FPN-style decoder to stride 4 (or 2), heatmaps + soft-argmax.

    Soft-argmax (integral regression) gives sub-pixel coordinates from a
    coarse heatmap and trains with a coordinate loss, so masked points are
    simply left out of the loss. Per-point confidence is a separate head,
    pooled under each point's heatmap and trained to predict how close the
    point is (target exp(-error / tau)), so low scores flag bad points.
    """

    def __init__(
        self,
        num_points: int,
        input_size: int = 96,
        channels: int = 3,
        widths: tuple[int, ...] = (16, 24, 48, 96, 160),
        depths: tuple[int, ...] = (1, 2, 3, 3),
        expand: int = 4,
        decoder: int = 64,
        score_tau: float = 0.01,
        point_offset: bool = False,
        conventions: int = 1,
        patch_stem: bool = False,
        heatmap_stride: int = 4,
    ) -> None:
        super().__init__()
        if heatmap_stride not in (2, 4) or (heatmap_stride == 2 and patch_stem):
            raise ValueError(f"heatmap_stride must be 4, or 2 with the 3x3 stem (not patch_stem), not {heatmap_stride}")
        self.num_points = num_points
        # Annotators' habits (points half a pixel right of the feature, jaws drawn
        # lower) differ between datasets and are not mirror-symmetric. A learned
        # per-point offset per convention, mirrored for flipped samples (see
        # losses.applied_offset), keeps the network itself convention-free and
        # symmetric; the output uses convention 0 (the 300-W markup), and the
        # others are a constant shift away (exported in the model card).
        shape = (num_points, 2) if conventions == 1 else (conventions, num_points, 2)
        self.point_offset = nn.Parameter(torch.zeros(shape)) if point_offset else None
        self.score_tau = score_tau
        # patch_stem: one 4x4 stride-4 conv instead of a 3x3 stride-2 conv at twice the resolution (ViT/ConvNeXt's
        # patchify); the first stage then keeps its resolution. Same strides, less work at the input.
        self.stem = (nn.Sequential(nn.Conv2d(channels, widths[0], 4, 4, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True)) if patch_stem else _conv_bn(channels, widths[0], 3, 2))
        stages = []
        cin = widths[0]
        for i, (w, d) in enumerate(zip(widths[1:], depths)):
            stride = 1 if i == 3 or (i == 0 and patch_stem) else 2
            blocks = [InvertedResidual(cin, w, stride, 1 if i == 0 else expand)]
            blocks += [InvertedResidual(w, w, 1, expand) for _ in range(d - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.ModuleList(stages)  # strides 4, 8, 16, 16
        self.lateral = nn.ModuleList([_conv_bn(w, decoder, 1) for w in widths[1:]])
        # heatmap_stride 2: the stem's stride-2 features join the decoder too (a finer grid, ~4x its cells)
        self.stem_lateral = _conv_bn(widths[0], decoder, 1) if heatmap_stride == 2 else None
        self.smooth = _conv_bn(decoder, decoder, 3, groups=decoder)
        self.mix = _conv_bn(decoder, decoder, 1)
        self.heatmap = nn.Conv2d(decoder, num_points, 1)
        self.score = nn.Conv2d(decoder, num_points, 1)
        side = -(-input_size // heatmap_stride)  # the decoder's grid; constant buffers keep shape ops out of ONNX
        self.register_buffer("grid", torch.stack(_grid(side, side), dim=-1), persistent=False)  # (side^2, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stem = y = self.stem(x)
        feats = []
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        top = self.lateral[-1](feats[-1]) + self.lateral[-2](feats[-2])
        for i in (1, 0):
            top = _upsampled(top, feats[i]) + self.lateral[i](feats[i])
        if self.stem_lateral is not None:
            top = _upsampled(top, stem) + self.stem_lateral(stem)
        f = self.mix(self.smooth(top))
        h, w = f.shape[-2:]
        grid = self.grid if self.grid.shape[0] == h * w else torch.stack(_grid(h, w, f.device), dim=-1)
        prob = torch.softmax(self.heatmap(f).flatten(2), dim=-1)  # (N, K, h*w)
        points = prob @ grid  # soft-argmax: (N, K, 2)
        # The score head pooled under each heatmap. Pooling its 1x1 conv's map rather than the features lets that
        # conv run in int8 with the decoder; pooling features first needs a float (K x cells x C) matrix product.
        score_logit = (prob * self.score(f).flatten(2)).sum(-1)
        out = {"points": points, "scores": torch.sigmoid(score_logit), "score_logits": score_logit}
        if self.point_offset is not None:
            out["points"] = points + self.offset_table()[0]
        if self.training:
            out["heatmaps"] = prob.unflatten(-1, (h, w))
            if self.point_offset is not None:
                out["raw_points"] = points
                out["point_offset"] = self.offset_table()
        return out

    def offset_table(self) -> torch.Tensor:
        """(conventions, K, 2) offsets, whichever shape the parameter has."""
        assert self.point_offset is not None
        return self.point_offset if self.point_offset.ndim == 3 else self.point_offset[None]


def _upsampled(top: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``top`` resized to ``like``'s grid; the usual 2x case keeps shape arithmetic out of the ONNX graph."""
    size = tuple(like.shape[-2:])
    if size == (2 * top.shape[-2], 2 * top.shape[-1]):
        return nn.functional.interpolate(top, scale_factor=2.0, mode="bilinear", align_corners=False)
    return nn.functional.interpolate(top, size=size, mode="bilinear", align_corners=False)


def cell_centres(n: int, device: torch.device | None = None) -> torch.Tensor:
    """Normalised coordinates of the centres of n heatmap cells along one axis (geometry's (u + 0.5) / S)."""
    return (torch.arange(n, dtype=torch.float32, device=device) + 0.5) / n


def _grid(h: int, w: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres of an h x w heatmap, flattened row-major as the softmax is."""
    return cell_centres(w, device).repeat(h), cell_centres(h, device).repeat_interleave(w)


@register("heatmap")
def heatmap(num_points: int, input_size: int, channels: int, **kwargs) -> nn.Module:
    return HeatmapNet(num_points, input_size, channels, **kwargs)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of convolutions and linear layers for one input: the cost that matters on a CPU."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    hooks = [mod.register_forward_hook(conv_hook) for mod in model.modules() if isinstance(mod, nn.Conv2d)]
    hooks += [mod.register_forward_hook(lin_hook) for mod in model.modules() if isinstance(mod, nn.Linear)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
