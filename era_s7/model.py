"""The three steps' models (and, after them, the parameter-golf models).

Every model maps (n, 1, 28, 28) normalised MNIST to (n, 10) logits. Each docstring gives the layer plan
with output size and receptive field (RF); `utils.receptive_field(model)` computes the same from the modules.
`RECIPES` holds each model's training hyperparameters (overrides of training.HYPERPARAMETERS).
"""
from __future__ import annotations

import torch
from torch import nn


def conv_block(c_in: int, c_out: int, bn: bool = True, dropout: float = 0.0, kernel: int = 3) -> nn.Sequential:
    """conv (3x3 by default, no padding) -> ReLU (-> BatchNorm) (-> channel dropout): the unit every model is built from."""
    layers = [nn.Conv2d(c_in, c_out, kernel, bias=not bn), nn.ReLU()]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    if dropout:
        # Dropout2d drops whole channels: the regulariser suited to convolutions, and on the CPU
        # far cheaper than element-wise Dropout (one random draw per channel, not per pixel).
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


def head(c_in: int, hidden: int | None = None, bn: bool = True) -> nn.Sequential:
    """Global average pooling, then 1x1 convs to the 10 classes (no dense layer): with `hidden`, a 1x1
    conv block c_in -> hidden first, so that the features are mixed once more before they are classified."""
    mix = [conv_block(c_in, hidden, bn, kernel=1)] if hidden else []
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), *mix, nn.Conv2d(hidden or c_in, 10, 1, bias=False), nn.Flatten())


class Skeleton(nn.Module):
    """The layer plan of the three steps (each step's class sets bn and dropout):

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

    bn, dropout = True, 0.0
    widths = (8, 12, 16, 16, 16)  # output channels of the five 3x3 convs
    head_width = 16                # the head's hidden 1x1 conv

    def __init__(self):
        super().__init__()
        bn, p, (c1, c2, c3, c4, c5) = self.bn, self.dropout, self.widths
        self.features = nn.Sequential(
            conv_block(1, c1, bn, p),
            conv_block(c1, c2, bn, p),
            nn.MaxPool2d(2),
            conv_block(c2, c3, bn, p),
            conv_block(c3, c4, bn, p),
            conv_block(c4, c5, bn, 0.0),  # no dropout right before the classifier
        )
        self.head = head(c5, self.head_width, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Model_1(Skeleton):
    __doc__ = "Step 1, the skeleton: plain conv + ReLU (with biases), no BatchNorm, no dropout. " + Skeleton.__doc__
    bn, dropout = False, 0.0


class Model_2(Skeleton):
    __doc__ = "Step 2: the skeleton with BatchNorm after every conv and channel dropout 0.05. " + Skeleton.__doc__
    bn, dropout = True, 0.05


class Model_3(Skeleton):
    __doc__ = ("Step 3: BatchNorm kept; dropout removed, as augmentation regularises without taking capacity. "
               + Skeleton.__doc__)
    bn, dropout = True, 0.0


class Model_4(Skeleton):
    """Parameter golf: step 3's layer plan with every conv narrower, under 4,000 parameters (BatchNorm, no dropout).

    | block      | layer              | output   | RF |
    |------------|--------------------|----------|----|
    | features.0 | conv 3x3, 1 -> 8   | 26x26x8  |  3 |
    | features.1 | conv 3x3, 8 -> 8   | 24x24x8  |  5 |
    | features.2 | maxpool 2x2        | 12x12x8  |  6 |
    | features.3 | conv 3x3, 8 -> 10  | 10x10x10 | 10 |
    | features.4 | conv 3x3, 10 -> 12 | 8x8x12   | 14 |
    | features.5 | conv 3x3, 12 -> 10 | 6x6x10   | 18 |
    | head       | GAP, 1x1 10 -> 10, 1x1 10 -> 10 | 1x1x10 | 28 |
    """
    bn, dropout = True, 0.0
    widths, head_width = (8, 8, 10, 12, 10), 10


MODELS = {cls.__name__: cls for cls in (Model_1, Model_2, Model_3, Model_4)}

# Each step's training recipe: overrides of training.HYPERPARAMETERS.
PLAIN_SGD = dict(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=0.0, schedule="constant",
                 rotate_deg=0.0, translate=0.0)
RECIPES = {
    "Model_1": PLAIN_SGD,
    "Model_2": PLAIN_SGD,
    "Model_3": dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="onecycle", pct_start=0.2,
                    rotate_deg=8.0, translate=0.0, ema=0.998, label_smoothing=0.1),
}
RECIPES["Model_4"] = RECIPES["Model_3"]  # golf changes the model only


def make_model(name: str, seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:
    """A freshly initialised model by class name; the seed fixes its initial weights."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is not known; allowed: {sorted(MODELS)}")
    torch.manual_seed(seed)
    return MODELS[name]().to(device)
