"""The three steps' models (and, after them, the parameter-golf models).

Every model maps (n, 1, 28, 28) normalised MNIST to (n, 10) logits. Each docstring gives the layer plan
with output size and receptive field (RF); `utils.receptive_field(model)` computes the same from the modules.
`RECIPES` holds each model's training hyperparameters (overrides of training.HYPERPARAMETERS).
"""
from __future__ import annotations

import torch
from torch import nn


def conv_block(c_in: int, c_out: int, bn: bool = True, dropout: float = 0.0) -> nn.Sequential:
    """3x3 conv (no padding) -> ReLU (-> BatchNorm) (-> channel dropout): the unit every model is built from."""
    layers = [nn.Conv2d(c_in, c_out, 3, bias=not bn), nn.ReLU()]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    if dropout:
        # Dropout2d drops whole channels: the regulariser suited to convolutions, and on the CPU
        # far cheaper than element-wise Dropout (one random draw per channel, not per pixel).
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


def head(c_in: int) -> nn.Sequential:
    """Global average pooling, then a 1x1 conv to the 10 classes: no dense layer."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, 10, 1, bias=False), nn.Flatten())


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
    | head       | GAP, 1x1 16 -> 10  | 1x1x10   | 28 |

    Edges and strokes are formed by RF 5, where the one max-pool halves the map (and the compute after it);
    four more 3x3 convs and the GAP take the RF to 28, the whole digit."""

    bn, dropout = True, 0.0

    def __init__(self):
        super().__init__()
        bn, p = self.bn, self.dropout
        self.features = nn.Sequential(
            conv_block(1, 8, bn, p),
            conv_block(8, 12, bn, p),
            nn.MaxPool2d(2),
            conv_block(12, 16, bn, p),
            conv_block(16, 16, bn, p),
            conv_block(16, 16, bn, 0.0),  # no dropout right before the classifier
        )
        self.head = head(16)

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


class Model_4(nn.Module):
    """Parameter golf: step 3's layer plan with every conv narrower, 3,964 parameters (BatchNorm, no dropout).

    | block      | layer              | output   | RF |
    |------------|--------------------|----------|----|
    | features.0 | conv 3x3, 1 -> 8   | 26x26x8  |  3 |
    | features.1 | conv 3x3, 8 -> 8   | 24x24x8  |  5 |
    | features.2 | maxpool 2x2        | 12x12x8  |  6 |
    | features.3 | conv 3x3, 8 -> 10  | 10x10x10 | 10 |
    | features.4 | conv 3x3, 10 -> 12 | 8x8x12   | 14 |
    | features.5 | conv 3x3, 12 -> 12 | 6x6x12   | 18 |
    | head       | GAP, 1x1 12 -> 10  | 1x1x10   | 28 |
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_block(1, 8), conv_block(8, 8), nn.MaxPool2d(2),
                                      conv_block(8, 10), conv_block(10, 12), conv_block(12, 12))
        self.head = head(12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


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
