"""The three steps' models (and, after them, the parameter-golf model).

Every model maps (n, 1, 28, 28) normalised MNIST to (n, 10) logits. Each docstring gives the layer plan
with output size and receptive field (RF); `utils.receptive_field(model)` computes the same from the modules.
Each model's training recipe is written in recipes.py (`RECIPES`, importable from here too); a run's whole recipe,
resolved with the defaults, the epochs and the precision, is `recipes.run_hyperparameters("Model_3")`.
"""
from __future__ import annotations

import torch
from torch import nn

from .recipes import RECIPES  # noqa: F401 each step's recipe, written in recipes.py; the notebooks import it from here


def conv_block(c_in: int, c_out: int, bn: bool = True, kernel: int = 3) -> nn.Sequential:
    """conv (3x3 by default, no padding) -> ReLU (-> BatchNorm): the unit the skeleton is built from."""
    layers = [nn.Conv2d(c_in, c_out, kernel, bias=not bn), nn.ReLU()]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


def separable(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    """Xception-style depthwise-separable conv (Chollet, "Xception", CVPR 2017; no padding): a depthwise
    kernel x kernel conv (one filter per channel), a pointwise 1x1 conv c_in -> c_out that mixes the channels,
    then ReLU and BatchNorm (none between the two convs, as in Xception). k*k*c_in + c_in*c_out + 2*c_out
    parameters: at 40 channels and k = 3 a tenth of a full 3x3 conv's."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, kernel, groups=c_in, bias=False), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.ReLU(), nn.BatchNorm2d(c_out))


def head(c_in: int, hidden: int | None = None, bn: bool = True) -> nn.Sequential:
    """Global average pooling, then 1x1 convs to the 10 classes (no dense layer): with `hidden`, a 1x1
    conv block c_in -> hidden first, so that the features are mixed once more before they are classified."""
    mix = [conv_block(c_in, hidden, bn, kernel=1)] if hidden else []
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), *mix, nn.Conv2d(hidden or c_in, 10, 1, bias=False), nn.Flatten())


class Skeleton(nn.Module):
    """The layer plan of steps 1 and 2 (each step's class sets bn):

    | block      | layer              | output   | RF |
    |------------|--------------------|----------|----|
    | features.0 | conv 3x3, 1 -> 8   | 26x26x8  |  3 |
    | features.1 | conv 3x3, 8 -> 12  | 24x24x12 |  5 |
    | features.2 | maxpool 2x2        | 12x12x12 |  6 |
    | features.3 | conv 3x3, 12 -> 16 | 10x10x16 | 10 |
    | features.4 | conv 3x3, 16 -> 16 | 8x8x16   | 14 |
    | features.5 | conv 3x3, 16 -> 16 | 6x6x16   | 18 |
    | head.0     | GAP                | 1x1x16   | 28 |
    | head.1     | conv 1x1, 16 -> 16 | 1x1x16   | 28 |
    | head.2     | conv 1x1, 16 -> 10 | 1x1x10   | 28 |

    Edges and strokes are formed by RF 5, where the one max-pool halves the map (and the compute after it);
    four more 3x3 convs and the GAP take the RF to 28, the whole digit. The two-layer head was chosen over a
    single 1x1 conv on the validation split (docs/search.md): +0.08 point for 288 more parameters."""

    bn = True
    widths = (8, 12, 16, 16, 16)  # output channels of the five 3x3 convs
    head_width = 16                # the head's hidden 1x1 conv

    def __init__(self):
        super().__init__()
        bn, (c1, c2, c3, c4, c5) = self.bn, self.widths
        self.features = nn.Sequential(conv_block(1, c1, bn), conv_block(c1, c2, bn), nn.MaxPool2d(2),
                                      conv_block(c2, c3, bn), conv_block(c3, c4, bn), conv_block(c4, c5, bn))
        self.head = head(c5, self.head_width, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DSX(nn.Module):
    """The depthwise-separable plan of step 3 (Xception blocks, `separable`): a full 3x3 conv 1 -> stem,
    separable 3x3 blocks of widths `pre`, a 2x2 max-pool, separable blocks of widths `post` (depthwise
    `kernel` x `kernel`), GAP, then the head (1x1 -> 10, with a hidden 1x1 layer when `hidden`). No padding.
    The defaults are dsx40 (7,560 parameters):

    | block        | layer                       | output   | RF |
    |--------------|-----------------------------|----------|----|
    | features.0   | conv 3x3, 1 -> 16           | 26x26x16 |  3 |
    | features.1   | separable 3x3, 16 -> 40     | 24x24x40 |  5 |
    | features.2   | maxpool 2x2                 | 12x12x40 |  6 |
    | features.3-5 | 3 x separable 3x3, 40 -> 40 | 10, 8, 6 | 18 |
    | head         | GAP, conv 1x1, 40 -> 10     | 1x1x10   | 28 |

    The same pool position and RF as the skeleton, but a separable 3x3 costs about a tenth of a full 3x3 at 40
    channels, so the plan affords 2.5x the skeleton's channels in the same budget, at about the same multiply-adds
    per image (0.94 M against the skeleton's 0.95 M; `bench.forward_macs`)."""

    def __init__(self, pre=(40,), post=(40, 40, 40), stem: int = 16, kernel: int = 3, hidden: int | None = None):
        super().__init__()
        widths = [stem, *pre]
        layers = [conv_block(1, stem), *(separable(a, b) for a, b in zip(widths, widths[1:])), nn.MaxPool2d(2)]
        widths = [pre[-1], *post]
        layers += [separable(a, b, kernel) for a, b in zip(widths, widths[1:])]
        self.features = nn.Sequential(*layers)
        self.head = head(widths[-1], hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Model_1(Skeleton):
    __doc__ = "Step 1, the skeleton: plain conv + ReLU (with biases), no BatchNorm. " + Skeleton.__doc__
    bn = False


class Model_2(Skeleton):
    __doc__ = "Step 2: the skeleton with BatchNorm after every conv. " + Skeleton.__doc__
    bn = True


class Model_3(DSX):
    """Step 3: after a full 3x3 stem, Xception-style depthwise-separable convs 41 channels wide where the skeleton
    has full 3x3 convs 12-16 wide (7,864 parameters, RF 28). The plan (dsx40, 40 wide) was adopted by round 3 of
    the search on the validation split, its width (41, the most the budget allows) by round 4 (docs/search.md):

    | block        | layer                       | output   | RF |
    |--------------|-----------------------------|----------|----|
    | features.0   | conv 3x3, 1 -> 16           | 26x26x16 |  3 |
    | features.1   | separable 3x3, 16 -> 41     | 24x24x41 |  5 |
    | features.2   | maxpool 2x2                 | 12x12x41 |  6 |
    | features.3-5 | 3 x separable 3x3, 41 -> 41 | 10, 8, 6 | 18 |
    | head         | GAP, conv 1x1, 41 -> 10     | 1x1x10   | 28 |
    """

    def __init__(self):
        super().__init__(pre=(41,), post=(41, 41, 41))


class Model_4(DSX):
    """Parameter golf: step 3's plan with every separable block 26 channels wide instead of 41 (3,934 parameters,
    under 4,000; the stem and the layer plan unchanged, RF 28):

    | block        | layer                       | output   | RF |
    |--------------|-----------------------------|----------|----|
    | features.0   | conv 3x3, 1 -> 16           | 26x26x16 |  3 |
    | features.1   | separable 3x3, 16 -> 26     | 24x24x26 |  5 |
    | features.2   | maxpool 2x2                 | 12x12x26 |  6 |
    | features.3-5 | 3 x separable 3x3, 26 -> 26 | 10, 8, 6 | 18 |
    | head         | GAP, conv 1x1, 26 -> 10     | 1x1x10   | 28 |
    """

    def __init__(self):
        super().__init__(pre=(26,), post=(26, 26, 26))


MODELS = {cls.__name__: cls for cls in (Model_1, Model_2, Model_3, Model_4)}



def make_model(name: str, seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:
    """A freshly initialised model by class name; the seed fixes its initial weights."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is not known; allowed: {sorted(MODELS)}")
    torch.manual_seed(seed)
    return MODELS[name]().to(device)
