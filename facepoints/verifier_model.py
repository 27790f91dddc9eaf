"""The face verifier network: a second look at each detection, face or not (MTCNN's R-Net idea, much smaller).

The detector scores a cell from a 32-pixel-stride feature map that must also
find the face's box at every size; the verifier sees only one candidate, cut
out with context by the landmark model's crop path and resized to a small
square, and answers one question. Trained on the detector's own false
detections (hard negatives) against the faces it found.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facepoints.detector_model import DWBlock, conv_bn


@dataclass
class VerifierNetConfig:
    input_size: int = 48
    context: float = 1.5  # crop side, times the detection box's longer side
    stem: int = 16
    widths: tuple[int, ...] = (32, 48, 64, 96)  # strides 2 (stem), 2, 4, 8, 16
    dropout: float = 0.2


class VerifierNet(nn.Module):
    """RGB crops in [0, 1] (N, 3, S, S) -> face logit (N,)."""

    def __init__(self, cfg: VerifierNetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or VerifierNetConfig()
        self.cfg = cfg
        chans = [cfg.stem, *cfg.widths]
        blocks = [DWBlock(chans[0], chans[1], 1), DWBlock(chans[1], chans[1], 1)]
        blocks += [DWBlock(chans[i], chans[i + 1], 2) for i in range(1, len(cfg.widths))]
        self.features = nn.Sequential(conv_bn(3, cfg.stem, 3, 2), *blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(cfg.dropout),
                                  nn.Linear(cfg.widths[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))[:, 0]


class VerifierExport(nn.Module):
    """ONNX graph: crops (N, 3, S, S) in [0, 1] -> face probability (N,)."""

    def __init__(self, net: VerifierNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(image))
