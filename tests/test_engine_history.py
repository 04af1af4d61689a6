"""The engine's CPU histories stay bit for bit what main's engine computed before the step stopped reading the host
(issue 37): short runs of each step's recipe, compared with `tests/fixtures/engine_histories.json`, which main's engine
at b8e2348 wrote on the AMD EPYC with avx512_bf16 (`python tests/test_engine_history.py --write`, one thread).
Another processor (machine.arithmetic) or another torch computes other floats, so there the record is skipped; the comparison with
the verbatim copy of main's step (`_main_train_epoch`) runs everywhere."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from era_s7 import training
from era_s7.model import RECIPES, make_model
from era_s7.machine import arithmetic

RECORD = Path(__file__).parent / "fixtures" / "engine_histories.json"
SMALL = dict(epochs=2, train_subset=1000, test_subset=200)  # 1000 = 15 x 64 + 40: a short last batch
CASES = {  # name -> (model, hyperparameters)
    "Model_3 fp32": ("Model_3", {**RECIPES["Model_3"], **SMALL}),
    "Model_3 bf16": ("Model_3", {**RECIPES["Model_3"], **training.PRECISIONS["bf16"], **SMALL}),
    "Model_3 fp32, ema_also and distillation": (
        "Model_3", {**RECIPES["Model_3"], **SMALL, "ema_also": 0.99, "distill": 0.3, "distill_after": 1}),
    "Model_3 fp32, step schedule, elastic": (
        "Model_3", {**RECIPES["Model_3"], **SMALL, "schedule": "step", "step_size": 1, "elastic": 1.0}),
    "Model_1": ("Model_1", {**RECIPES["Model_1"], **SMALL}),
    "Model_2": ("Model_2", {**RECIPES["Model_2"], **SMALL}),
}


def run_case(name: str, data: dict) -> dict:
    """One case's history (seconds left out) and the sha256 of the final weights' bytes, on one thread."""
    model_name, hp = CASES[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = make_model(model_name, seed=1)
        history = training.fit(model, data, hp, seed=1, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    digest = hashlib.sha256(b"".join(t.detach().contiguous().cpu().numpy().tobytes()
                                     for t in model.state_dict().values()))
    return dict(history=[{k: v for k, v in row.items() if k != "seconds"} for row in history],
                weights_sha256=digest.hexdigest())


@pytest.mark.parametrize("name", list(CASES))
def test_cpu_history_is_bit_for_bit_main_s(name, mnist):
    record = json.loads(RECORD.read_text())
    if (record["arithmetic"], record["torch"]) != (arithmetic("cpu"), torch.__version__):
        pytest.skip(f"the record's floats are {record['arithmetic']!r}'s under torch {record['torch']}; here: "
                    f"{arithmetic('cpu')!r}, torch {torch.__version__} (make test-floor's older torch computes others)")
    assert run_case(name, mnist) == record["cases"][name]


if __name__ == "__main__":  # python tests/test_engine_history.py --write: the record, from the engine at hand
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_engine_history.py --write")
    from era_s7.data import load_mnist
    from era_s7.results import git_commit
    data = load_mnist(device="cpu")
    cases = {name: run_case(name, data) for name in CASES}
    RECORD.write_text(json.dumps(dict(commit=git_commit(), arithmetic=arithmetic("cpu"), threads=1,
                                      torch=torch.__version__, cases=cases), indent=1) + "\n")
    print(f"wrote {RECORD}")
