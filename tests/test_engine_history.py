"""The engine's CPU histories stay bit for bit what main's engine computed before the step stopped reading the host
(issue 37): short runs of each step's recipe, compared with `tests/fixtures/engine_histories.json`, which main's engine
at b8e2348 wrote on the AMD EPYC with avx512_bf16 (`python tests/test_engine_history.py --write`, one thread).

A bit-for-bit record holds only where its floats can be expected: the same processor (model name, `arithmetic`
label and, where the record has it, `machine.processor`: family, model, flags), torch and threads. An Intel Xeon that
reads "AVX512 +avx512_bf16" like the AMD EPYC computes other floats for the separable convs
(shared/cases/other_processor.md), so the label alone is too coarse. Anywhere else the comparison skips, naming both;
the machine-independent tests of the same ground run everywhere: the same seed twice gives the same history
(tests/test_training.py), and the device step against the eager one (tests/test_step.py)."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from era_s7 import recipes, training
from era_s7.machine import arithmetic, device_name, processor
from era_s7.model import RECIPES, make_model

RECORD = Path(__file__).parent / "fixtures" / "engine_histories.json"
SMALL = dict(epochs=2, train_subset=1000, test_subset=200)  # 1000 = 15 x 64 + 40: a short last batch
CASES = {  # name -> (model, hyperparameters)
    "Model_3 fp32": ("Model_3", {**RECIPES["Model_3"], **SMALL}),
    "Model_3 bf16": ("Model_3", {**RECIPES["Model_3"], **recipes.PRECISIONS["bf16"], **SMALL}),
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


def here() -> dict:
    """This machine as a record names the machine it was written on (`--write`)."""
    return dict(device_name=device_name(torch.device("cpu")), arithmetic=arithmetic("cpu"), processor=processor(),
                torch=torch.__version__, threads=1)


def other_floats(record: dict, machine: dict) -> list[str]:
    """What differs between the record's machine and `machine`, by key (a key the record lacks, or holds as None,
    is not known and compared by the rest); [] where the same floats can be expected."""
    differ = []
    for key, value in machine.items():
        recorded = record.get(key)
        if key == "processor" and recorded and value:
            differ += [f"processor {k}: {recorded[k]!r} here {value.get(k)!r}" for k in recorded
                       if recorded[k] is not None and recorded[k] != value.get(k)]
        elif key != "processor" and recorded is not None and recorded != value:
            differ.append(f"{key}: {recorded!r} here {value!r}")
    return differ


def test_the_record_is_compared_only_on_the_machine_that_wrote_it():
    """The skip's key: the case's Intel Xeon shares the AMD EPYC's arithmetic label and still differs; torch and
    the processor's family or flags do too; a key the record does not know is not held against a machine."""
    record = dict(device_name="AMD EPYC", arithmetic="AVX512 +avx512_bf16", torch="2.14.1+cu130", threads=1,
                  processor=dict(vendor="AuthenticAMD", family="25", model="17", stepping=None, flags_sha256="a"))
    same = dict(record, processor=dict(record["processor"], stepping="1"))
    assert other_floats(record, same) == []
    xeon = dict(same, device_name="Intel(R) Xeon(R) Processor")
    assert other_floats(record, xeon) == ["device_name: 'AMD EPYC' here 'Intel(R) Xeon(R) Processor'"]
    assert other_floats(record, dict(same, torch="2.8.0+cu128")) == ["torch: '2.14.1+cu130' here '2.8.0+cu128'"]
    assert other_floats(record, dict(same, processor=dict(same["processor"], flags_sha256="b"))) == [
        "processor flags_sha256: 'a' here 'b'"]
    assert other_floats(dict(record, processor=None), dict(same, processor={})) == []


@pytest.mark.parametrize("name", list(CASES))
def test_cpu_history_is_bit_for_bit_main_s(name, mnist):
    record = json.loads(RECORD.read_text())
    differ = other_floats(record, here())
    if differ:
        pytest.skip(f"the record was written on another machine, whose floats this one need not compute "
                    f"({'; '.join(differ)}); the same ground, machine-independent: tests/test_training.py (the same "
                    "seed twice) and tests/test_step.py (device step against eager)")
    assert run_case(name, mnist) == record["cases"][name]


if __name__ == "__main__":  # python tests/test_engine_history.py --write: the record, from the engine at hand
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_engine_history.py --write")
    from era_s7.data import load_mnist
    from era_s7.results import git_commit
    data = load_mnist(device="cpu")
    cases = {name: run_case(name, data) for name in CASES}
    RECORD.write_text(json.dumps(dict(commit=git_commit(), **here(), cases=cases), indent=1) + "\n")
    print(f"wrote {RECORD}")
