"""make profile: the record's shape (what it names and how its parts add up), never its speed."""
import json

import pytest
import torch

from era_s7.machine import CONDITION_KEYS
from era_s7.tools import profile


def test_the_profile_of_a_step_names_its_condition_and_its_parts_add_up(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        assert profile.main(["--model", "Model_3", "--threads", "1", "--steps", "2", "--warmup", "1",
                             "--out", str(tmp_path / "p.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    record = json.loads((tmp_path / "p.json").read_text())
    assert all(record[k] is not None for k in CONDITION_KEYS) and record["threads"] == 1
    assert record["precision"] == "fp32" and record["recipe"] == "Model_3" and record["batch_size"] == 64
    built = profile.build("Model_3", torch.device("cpu"))
    leaves = [n for n, m in built.named_modules() if n and not list(m.children())]
    assert sorted(m["module"] for m in record["modules"]) == sorted(leaves)
    assert all(m["forward_ms"] > 0 for m in record["modules"])  # every layer's forward was seen
    assert sum(p["percent"] for p in record["phases"]) == pytest.approx(100.0)
    assert record["ops"] and record["ops"][0]["self_ms"] >= record["ops"][-1]["self_ms"] > 0
    assert any(o["op"].startswith("aten::") for o in record["ops"]) and "ms a step" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        profile.main(["--model", "Model_3", "--recipe", "nope"])
