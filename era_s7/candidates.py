"""Layer plans screened by the structural search (round 3, docs/search.md); the harness is era_s7/sweep.py.

Every plan maps (n, 1, 28, 28) to (n, 10) logits, has < 8,000 parameters and RF >= 28; each docstring gives
its layer plan with output sizes. The depthwise-separable plan DSX, which round 3 adopted as Model_3, lives in
era_s7/model.py. The building blocks are the field's standard ones:

- depthwise-separable conv (Chollet, "Xception", CVPR 2017): a depthwise 3x3 (one filter per channel) then a
  pointwise 1x1 that mixes channels; Xception puts no non-linearity between the two;
- inverted residual (Sandler et al., "MobileNetV2", CVPR 2018): 1x1 expand, depthwise 3x3, linear 1x1
  project, identity shortcut when shapes match;
- grouped conv with channel shuffle (Zhang et al., "ShuffleNet", CVPR 2018).
"""
from __future__ import annotations

import torch
from torch import nn

from .model import Skeleton, conv_block, head, separable


class M3(Skeleton):
    """Model_3 before round 3 adopted dsx40 (the baseline of round 3): the skeleton with BatchNorm after every conv
    and the two-layer head, 7,856 parameters (today's Model_2 has the same layers)."""
    bn = True


class InvertedResidual(nn.Module):
    """MobileNetV2's block at stride 1: 1x1 expand c -> c*t (BN, ReLU), depthwise 3x3 padded (BN, ReLU), linear
    1x1 project back to c (BN, no ReLU), plus the input (identity shortcut). Map size unchanged."""

    def __init__(self, c: int, t: int = 2):
        super().__init__()
        e = c * t
        self.block = nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.ReLU(),
                                   nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False), nn.BatchNorm2d(e), nn.ReLU(),
                                   nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class MBV2(nn.Module):
    """Inverted residuals after the pool (7,200 parameters):

    | layer                                  | output   | RF |
    |----------------------------------------|----------|----|
    | conv 3x3, 1 -> 12                      | 26x26x12 |  3 |
    | separable 3x3, 12 -> 20                | 24x24x20 |  5 |
    | max-pool 2x2                           | 12x12x20 |  6 |
    | 3 x inverted residual (20 -> 40 -> 20) | 12x12x20 | 18 |
    | GAP, 1x1 20 -> 10                      | 10       | 40 |
    """

    def __init__(self, c: int = 20, blocks: int = 3, t: int = 2):
        super().__init__()
        self.features = nn.Sequential(conv_block(1, 12), separable(12, c), nn.MaxPool2d(2),
                                      *(InvertedResidual(c, t) for _ in range(blocks)))
        self.head = head(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (n, g*k, h, w) -> channels reordered so that the next grouped conv's groups
    each see every group of the previous one."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Shuffle(nn.Module):
    """Grouped 3x3 convs with channel shuffle after the pool (7,900 parameters):

    | layer                                        | output   | RF |
    |----------------------------------------------|----------|----|
    | conv 3x3, 1 -> 8                             | 26x26x8  |  3 |
    | conv 3x3, 8 -> 28                            | 24x24x28 |  5 |
    | max-pool 2x2                                 | 12x12x28 |  6 |
    | 3 x (grouped conv 3x3 28 -> 28, 4 groups, shuffle) | 10, 8, 6 | 18 |
    | GAP, 1x1 28 -> 10                            | 10       | 28 |
    """

    def __init__(self, c: int = 28, groups: int = 4):
        super().__init__()
        grouped = [nn.Sequential(nn.Conv2d(c, c, 3, groups=groups, bias=False), nn.ReLU(), nn.BatchNorm2d(c),
                                 ChannelShuffle(groups)) for _ in range(3)]
        self.features = nn.Sequential(conv_block(1, 8), conv_block(8, c), nn.MaxPool2d(2), *grouped)
        self.head = head(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ExpandBeforeGAP(M3):
    """M3's features, then a 1x1 conv 16 -> 20 (ReLU, BN) on the 6x6 map before the GAP, and a single 1x1
    20 -> 10 after it (7,968 parameters, RF 28): the head's mixing done per position instead of after pooling."""

    def __init__(self, expand: int = 20):
        super().__init__()
        self.head = nn.Sequential(conv_block(16, expand, kernel=1), *head(expand))
