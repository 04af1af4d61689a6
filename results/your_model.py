# The notebook cell that defines YourModel, saved by era_s7.tools.check: each seed's process imports it from here.
import torch
from torch import nn


def block(c_in: int, c_out: int, dropout: float = 0.05) -> nn.Sequential:
    """3x3 conv (no padding, no bias) -> ReLU -> BatchNorm -> dropout."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(c_out), nn.Dropout(dropout))


class YourModel(nn.Module):
    """The default: the layer plan of ankode/ERAV1 `Session7/S7_Model3.ipynb` (7,680 parameters), the first of the
    published plans in the survey of small MNIST models. 3x3 convs without padding or bias, each followed by
    ReLU, BatchNorm and dropout 0.05; a plain 1x1 squeeze before the one max-pool; GAP, then two 1x1 convs.

    | layer                                      | output   | RF |
    |--------------------------------------------|----------|----|
    | conv 3x3, 1 -> 16                          | 26x26x16 |  3 |
    | conv 3x3, 16 -> 8                          | 24x24x8  |  5 |
    | conv 1x1, 8 -> 8 (plain)                   | 24x24x8  |  5 |
    | max-pool 2x2                               | 12x12x8  |  6 |
    | conv 3x3, 8 -> 16                          | 10x10x16 | 10 |
    | conv 3x3, 16 -> 16                         | 8x8x16   | 14 |
    | conv 3x3, 16 -> 16                         | 6x6x16   | 18 |
    | GAP, conv 1x1 16 -> 16, ReLU, 1x1 16 -> 10 | 1x1x10   | 28 |

    The survey gives the layers and the parameter count, which this matches; where dropout sits, and the ReLU
    between the head's two 1x1 convs, are this notebook's reading of the plan."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(block(1, 16), block(16, 8), nn.Conv2d(8, 8, 1, bias=False), nn.MaxPool2d(2),
                                      block(8, 16), block(16, 16), block(16, 16))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 16, 1, bias=False), nn.ReLU(),
                                  nn.Conv2d(16, 10, 1, bias=False), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
