"""The model's summary (era_s7/summary.py): torchsummary's table on the model's device, the model's own count as its
totals."""
import re

import pytest
import torch
from torch import nn

from era_s7 import utils
from era_s7.model import make_model
from era_s7.summary import count_parameters, summary


def test_summary_runs_on_cpu():
    text = summary(make_model("Model_3"))
    assert "Total params" in text and f"{count_parameters(make_model('Model_3')):,}" in text


class SharedBlock(nn.Module):
    """One 3x3 conv applied three times (weight sharing): 80 + 584 + 90 = 754 parameters."""

    def __init__(self):
        super().__init__()
        self.stem, self.block, self.head = nn.Conv2d(1, 8, 3), nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        for _ in range(3):
            x = torch.relu(self.block(x))
        return self.head(x.mean((2, 3)))


class Scaled(nn.Module):
    """A conv and a learned per-channel scale (a parameter named neither weight nor bias): 40 + 4 parameters."""

    def __init__(self):
        super().__init__()
        self.conv, self.scale = nn.Conv2d(1, 4, 3), nn.Parameter(torch.ones(1, 4, 1, 1))

    def forward(self, x):
        return self.conv(x) * self.scale


def totals(text: str) -> tuple[int, str]:
    lines = text.splitlines()
    total = next(line for line in lines if line.startswith("Total params:"))
    return int(total.split(":")[1].replace(",", "")), " ".join(line for line in lines if line.startswith("Note:"))


@pytest.mark.parametrize("model, size, count, note", [
    (SharedBlock(), (1, 28, 28), 754, r"add up to 1,922 because .*weight sharing: 'block' \(Conv2d, 584 parameters\) "
                                      r"called 3 times"),
    (Scaled(), (1, 28, 28), 44, r"add up to 40 because torchsummary counts only the .weight and .bias"),
    (nn.Linear(2, 3), (2,), 9, r"^$"),  # one layer: torchsummary alone counted nothing and crashed
    (nn.Linear(2, 3), 2, 9, r"^$"),
    (make_model("Model_3"), (1, 28, 28), None, r"^$"),
], ids=["weight-sharing", "unnamed-parameter", "one-linear", "int-size", "model3"])
def test_summary_totals_are_the_models_own_count(model, size, count, note):
    total, said = totals(utils.summary(model, size))
    assert total == sum(p.numel() for p in model.parameters()) == (count or total)
    assert re.search(note, said), said


@pytest.mark.parametrize("model, size, message", [
    (SharedBlock(), (1, 1, 28, 28), r"input_size \(1, 1, 28, 28\) .*Expected 3D \(unbatched\) or 4D .*input_size is "
                                    r"one sample's shape without the batch dimension: try \(1, 28, 28\)$"),
    (SharedBlock(), (1, 28.0, 28), r"input_size=\(1, 28.0, 28\): give one sample's shape as a tuple of positive ints"),
    (nn.Sequential(nn.ReLU(), nn.Flatten()), (1, 28, 28), r"^Sequential has no parameters"),
], ids=["batch-given", "float-size", "no-parameters"])
def test_summary_refuses_what_it_cannot_count_saying_why(model, size, message):
    with pytest.raises(ValueError, match=message):
        utils.summary(model, size)
