"""make bench times today's Model_3 (era_s7.model), and each row names what it timed."""
import pytest
import torch

from era_s7 import model
from era_s7.tools import bench


def test_bench_builds_today_s_model_3_and_names_it():
    built = bench.build("Model_3", torch.device("cpu"))
    assert type(built) is model.Model_3
    assert bench.describe("Model_3", built) == dict(
        model="Model_3", model_class="Model_3", params=sum(p.numel() for p in model.Model_3().parameters()),
        forward_macs=bench.forward_macs(model.make_model("Model_3")))
    assert type(bench.build("m3", torch.device("cpu"))).__name__ != "Model_3"  # a sweep candidate, by its own name
    with pytest.raises(SystemExit, match="neither a model"):
        bench.build("no-such-model", torch.device("cpu"))
