"""The face detector network: a tiny anchor-free single-shot detector (YuNet / FCOS class).

Depthwise-separable backbone to stride 32, an FPN-lite neck (1x1 laterals,
top-down sums, one depthwise 3x3 each) and one head shared by the three
levels (strides 8, 16, 32). Per location it predicts a face logit and the
distances from the cell centre to the four sides of the face's tight box
(brows to chin: the landmark model's box), in units of the stride, as
``exp`` of the output so they stay positive. One network serves every input
size that is a multiple of 32; the ONNX export keeps height and width dynamic.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

STRIDES = (8, 16, 32)


@dataclass
class DetectorNetConfig:
    """Channel widths; the defaults give 58 k parameters, the shipped detector (configs/detector_lean.yaml) 96 k."""

    stem: int = 16
    widths: tuple[int, ...] = (24, 32, 64, 96)  # strides 4, 8, 16, 32
    depths: tuple[int, ...] = (1, 2, 3, 2)
    neck: int = 48
    points: bool = False  # also predict the five points (eye centres, nose tip, mouth corners) per location
    head_depth: int = 2  # depthwise blocks of the head that the strides share
    # 2: a 2x2 stem without overlap, cheaper on the full-size photo, where the 3-channel stem is the costliest layer
    stem_kernel: int = 3


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    pad = k // 2 if k % 2 else 0  # odd kernels keep the size (then stride), even ones tile it
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DWBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (MobileNetV1), residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = conv_bn(cin, cin, 3, stride, groups=cin)
        self.pw = conv_bn(cin, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


def _stage(cin: int, cout: int, depth: int) -> nn.Sequential:
    return nn.Sequential(DWBlock(cin, cout, 2), *[DWBlock(cout, cout) for _ in range(depth - 1)])


class FaceDetectorNet(nn.Module):
    """RGB in [0, 1] (N, 3, H, W) -> per level (scores logits (N, 1, h, w), box (N, 4, h, w) in strides,
    five points (N, 10, h, w) as x, y offsets from the cell centre in strides, or None without that head)."""

    def __init__(self, cfg: DetectorNetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or DetectorNetConfig()
        self.cfg = cfg
        self.stem = conv_bn(3, cfg.stem, cfg.stem_kernel, 2)
        chans = [cfg.stem, *cfg.widths]
        self.stages = nn.ModuleList(_stage(chans[i], chans[i + 1], d) for i, d in enumerate(cfg.depths))
        self.laterals = nn.ModuleList(conv_bn(c, cfg.neck, 1) for c in cfg.widths[1:])
        self.smooth = nn.ModuleList(DWBlock(cfg.neck, cfg.neck) for _ in STRIDES)
        self.head = nn.Sequential(*[DWBlock(cfg.neck, cfg.neck) for _ in range(cfg.head_depth)])
        self.cls = nn.Conv2d(cfg.neck, 1, 1)
        self.box = nn.Conv2d(cfg.neck, 4, 1)
        self.points = nn.Conv2d(cfg.neck, 10, 1) if cfg.points else None
        self.level_scale = nn.Parameter(torch.ones(len(STRIDES)))
        nn.init.constant_(self.cls.bias, -4.6)  # prior 1 %: most locations are background
        nn.init.normal_(self.box.weight, std=0.01)
        nn.init.constant_(self.box.bias, 0.7)
        if self.points is not None:
            nn.init.normal_(self.points.weight, std=0.01)
            nn.init.zeros_(self.points.bias)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        c3, c4, c5 = feats[1:]
        p5 = self.laterals[2](c5)
        p4 = self.laterals[1](c4) + nn.functional.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        p3 = self.laterals[0](c3) + nn.functional.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        return [s(p) for s, p in zip(self.smooth, (p3, p4, p5))]

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        out = []
        for i, p in enumerate(self.features(x)):
            h = self.head(p)
            box = torch.exp((self.box(h) * self.level_scale[i]).clamp(-6.0, 6.0))
            out.append((self.cls(h), box, self.points(h) if self.points is not None else None))
        return out


class ExportWrapper(nn.Module):
    """ONNX graph: uint8-range float RGB (1, 3, H, W) -> scores (1, L) in [0, 1], distances (1, 4, L) from each
    cell centre to the box's left, top, right and bottom and, from a net with the five-point head, offsets
    (1, 10, L) of the five points (x, y pairs) from the cell centre, all in input pixels; L runs over the
    stride maps flattened row by row, finest first.

    Adding the cell centres is left to the runtime (``detectors.cnn.decode_cells``), for the few cells it
    keeps: done in the graph for every cell it took a sixth of a 640x480 photo's network time.
    """

    def __init__(self, net: FaceDetectorNet, fold_scale: bool = True) -> None:
        super().__init__()
        self.fold_scale = fold_scale
        self.net = _scaled_stem(net, 1 / 255.0) if fold_scale else net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = image if self.fold_scale else image / 255.0
        scores, distances, offsets = [], [], []
        for stride, (logit, dist, five) in zip(STRIDES, self.net(x)):
            n = logit.shape[0]
            scores.append(torch.sigmoid(logit).reshape(n, -1))
            distances.append((dist * stride).reshape(n, 4, -1))
            if five is not None:
                offsets.append((five * stride).reshape(n, 10, -1))
        out = (torch.cat(scores, dim=1), torch.cat(distances, dim=2))
        return (*out, torch.cat(offsets, dim=2)) if offsets else out


def _scaled_stem(net: FaceDetectorNet, scale: float) -> FaceDetectorNet:
    """A copy whose first convolution takes the input ``1 / scale`` times larger: the same network without a
    division of the whole photo (0.4 ms of a 640x480 frame). Exact, as that convolution is linear, unbiased
    and zero-padded."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        out.stem[0].weight.mul_(scale)
    return out


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
