"""The layer plans of the candidates the search has screened (docs/search.md); era_s7/tools/rounds.py names each
candidate with its recipe (`CANDIDATES`) and the rounds that paired them (`ROUNDS`), and era_s7/tools/sweep.py trains
and compares them. Each plan's source is hashed into its runs' records (results.model_source_sha256: a class, its bases
here and every function of this file), so this file holds the plans alone and each stays as its runs were made.

A candidate is a layer plan plus overrides of step 3's recipe, and a line saying what it changes and where it comes
from. Every plan maps (n, 1, 28, 28) to (n, 10) logits, has < 8,000 parameters and RF >= 28; each class's docstring
gives its layer plan with output sizes. The depthwise-separable plan DSX, which round 3 adopted as Model_3, lives in
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

from ..model import DSX, Skeleton, conv_block, head, separable


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


# ------------------------------------------------------------------ rounds 1-2: the skeleton's plans
class Round1(M3):
    """Model_3 as it was in round 1 of the search, the baseline then: the head a single 1x1 conv 16->10
    (7,568 parameters). Round 1 adopted head2's two-layer head into Model_3."""
    head_width = None


class Head2(Round1):
    """Round 1's Model_3 with a two-layer head: GAP, 1x1 16->16 (ReLU, BN), 1x1 16->10 (7,856 parameters).
    (Today's Model_2 has this head; this class, which builds it after the old one, keeps round 1's runs
    reproducible: the initial weights drawn are those of the runs on disk.)"""

    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 16, 1, bias=False), nn.ReLU(),
                                  nn.BatchNorm2d(16), nn.Conv2d(16, 10, 1, bias=False), nn.Flatten())


class Squeeze(nn.Module):
    """Wider before the pool, a 1x1 squeeze after it (7,742 parameters, RF 28):
    1->10 (26), 10->16 (24), max-pool (12), 1x1 16->8, 8->16 (10), 16->16 (8), 16->16 (6), GAP, 1x1 16->10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(1, 10), conv_block(10, 16), nn.MaxPool2d(2),
            nn.Conv2d(16, 8, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(8),
            conv_block(8, 16), conv_block(16, 16), conv_block(16, 16))
        self.head = head(16)

    def forward(self, x):
        return self.head(self.features(x))


def separable_bn(c_in: int, c_out: int) -> nn.Sequential:
    """Round 1's separable block (MobileNet's, Howard et al. 2017), not `model.separable` (Xception's): depthwise
    3x3 on c_in, then pointwise 1x1 c_in->c_out, each followed by ReLU and BatchNorm."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False), nn.ReLU(), nn.BatchNorm2d(c_in),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(c_out))


class DS40(nn.Module):
    """Depthwise-separable, 40 channels after the first conv (7,832 parameters, RF 28):
    1->16 (26), sep 16->40 (24), max-pool (12), 3 x sep 40->40 (10, 8, 6), GAP, 1x1 40->10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_block(1, 16), separable_bn(16, 40), nn.MaxPool2d(2),
                                      separable_bn(40, 40), separable_bn(40, 40), separable_bn(40, 40))
        self.head = head(40)

    def forward(self, x):
        return self.head(self.features(x))


def dsx41() -> DSX:
    """`Model_3`'s plan (`DSX` 41 wide), built as a `DSX`: its sweep files of rounds 3-6 name one model class."""
    return DSX(pre=(41,), post=(41,) * 3)


class DSXNoScale(nn.Module):
    """dsx41's functions with BatchNorm's learned scales taken out, and the parameters so freed spent on width: the
    next conv is linear in a BN's output, so it absorbs the BN's scale into its weights (a depthwise conv per channel,
    exactly) and its shift into a bias (through a depthwise conv without padding a constant stays a constant per
    channel); GAP and the head conv absorb the last BN's scale and shift alike. Across the max-pool this holds for
    positive scales, which trained ones are (step 3's: 0.60 and up). Each BN keeps its normalisation only
    (affine=False), each depthwise conv and the head get a bias: 211 fewer parameters at 41 wide (7,653), so 42 wide
    fits (7,958 parameters):

    | block        | layer                                          | output   | RF |
    |--------------|------------------------------------------------|----------|----|
    | features.0-2 | conv 3x3, 1 -> 16, ReLU, BN (no affine)        | 26x26x16 |  3 |
    | features.3-6 | separable 3x3 (depthwise with bias), 16 -> 42  | 24x24x42 |  5 |
    | features.7   | maxpool 2x2                                    | 12x12x42 |  6 |
    | features.8-  | 3 x separable 3x3 (depthwise with bias), 42    | 10, 8, 6 | 18 |
    | head         | GAP, conv 1x1 with bias, 42 -> 10              | 1x1x10   | 28 |
    """

    def __init__(self, width: int = 42, stem: int = 16):
        super().__init__()
        layers = [nn.Conv2d(1, stem, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(stem, affine=False)]
        for i, (a, b) in enumerate(zip([stem, width, width, width], [width] * 4)):
            layers += [nn.Conv2d(a, a, 3, groups=a), nn.Conv2d(a, b, 1, bias=False), nn.ReLU(),
                       nn.BatchNorm2d(b, affine=False)] + ([nn.MaxPool2d(2)] if i == 0 else [])
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, 10, 1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
