"""era_s7/loader.py: a learner's class from a spec, refused with the reason before anything trains (the loading of
a file and a module, and the probe's refusals on a model of each kind, are in tests/test_learner.py)."""
from pathlib import Path

import pytest
from torch import nn

from era_s7 import loader


def test_a_spec_that_names_no_class_is_refused():
    for spec, says in [("my_models.py", "write path/to/model.py:ClassName"), ("nowhere/x.py:Net", "is not a file"),
                       ("no_such_module_xyz:Net", "module 'no_such_module_xyz' fails to import: ModuleNotFoundError"),
                       ("torch.nn:functional", "is a module, not a torch.nn.Module class"),
                       ("torch.nn:NoSuchNet", "torch.nn has no 'NoSuchNet'")]:
        with pytest.raises(loader.ModelRefused, match=says):
            loader.load_class(spec)


def test_a_class_defined_inside_a_function_has_no_spec_to_load_it_again():
    class Local(nn.Module):
        pass

    with pytest.raises(loader.ModelRefused, match="defined inside a function"):
        loader.class_spec(Local, Path("unused.py"))
    assert loader.class_spec(nn.Linear, Path("unused.py")) == "torch.nn.modules.linear:Linear"


def test_the_probe_builds_runs_and_shapes_the_model_and_leaves_it_in_training_mode():
    class Flat(nn.Module):  # a model without parameters
        def forward(self, x):
            return x.flatten(1)[:, :10]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

        def forward(self, x):
            return self.body(x)

    with pytest.raises(loader.ModelRefused, match="no trainable parameters"):
        loader.probe(Flat)
    model = loader.probe(Net)
    assert model.training and all(p.grad is None for p in model.parameters())
