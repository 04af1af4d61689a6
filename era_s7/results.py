"""The results record of a run: results/<name>.json and results/<name>.pt, written atomically."""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import subprocess
import sys
from pathlib import Path

import torch

from .data import atomic_write_bytes
from .machine import CONDITION_KEYS, arithmetic, condition_of, run_condition  # noqa: F401 arithmetic: see below
from .receptive_field import ReceptiveFieldError, receptive_field
from .summary import count_parameters

# `results.arithmetic` (where it was defined until the machine's facts got a module of their own) stays importable
# for the scripts and notes that call it; its one definition is machine.arithmetic.
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "results"
RESULTS_ENV = "ERA_S7_RESULTS_DIR"  # set by `make notebooks`: the staging folder a notebook writes into
RECORD_KEYS = ("name", "model", "params", "epochs", "seed", "device", "device_name", "arithmetic", "threads",
               "precision", "memory_format", "torch",
               "hyperparameters", "receptive_field", "history", "total_seconds", "commit", "model_source_sha256")
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")


def model_source_sha256(model_class: type) -> str:
    """Hash of the code that builds the model: the class, its bases and the functions of its module.
    A record whose hash differs from the committed code's is stale (`make stale`)."""
    module = sys.modules[model_class.__module__]
    classes = [c for c in model_class.__mro__ if c.__module__ == model_class.__module__]
    functions = [f for _, f in sorted(inspect.getmembers(module, inspect.isfunction))
                 if f.__module__ == module.__name__]
    return hashlib.sha256("".join(inspect.getsource(o) for o in classes + functions).encode()).hexdigest()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# Records made before `arithmetic` was recorded: what it was, inferred from the processor's name and the precision
# (docs/research-log.md, "Performance"): the only Intel Xeon these ran on had AVX-512, AMX and bf16 flags; every
# "AMD EPYC" record on disk came from the EPYC with avx512_bf16 (the AVX2 EPYC built the engine, and none of its
# runs is a committed record). `relabel_arithmetic` writes these into the records, with `arithmetic_inferred`.
INFERRED_ARITHMETIC = {"Intel(R) Xeon(R) Processor": "AVX512 +avx512_bf16 +amx_bf16",
                       "AMD EPYC": "AVX512 +avx512_bf16"}


def relabel_arithmetic(results_dir: Path | str = RESULTS_DIR) -> list[str]:
    """Write `arithmetic` into every run record under `results_dir` (sweep files included) that lacks it, from
    INFERRED_ARITHMETIC, with `arithmetic_inferred` saying so; a record of a processor not known there is left
    unknown. Returns the files changed. Idempotent."""
    changed = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        record = load_record(path)
        runs = record["runs"] if "runs" in record else [record] if "history" in record else []
        todo = [r for r in runs if "arithmetic" not in r and r.get("device_name") in INFERRED_ARITHMETIC]
        for run in todo:
            run["arithmetic"] = INFERRED_ARITHMETIC[run["device_name"]]
            run["arithmetic_inferred"] = (f"recorded before arithmetic was; inferred from {run['device_name']!r} "
                                          "(results.INFERRED_ARITHMETIC)")
        if todo:
            if isinstance(record.get("condition"), dict):
                record["condition"] = dict(zip(CONDITION_KEYS, run_condition(runs[0])))
            save_json(record, path)
            changed.append(str(path))
    return changed


def make_record(name: str, model: torch.nn.Module, hp: dict, seed: int, history: list[dict],
                total_seconds: float) -> dict:
    """A run's record (RECORD_KEYS). A model whose receptive field the tool refuses (ReceptiveFieldError) is recorded
    with receptive_field None and the refusal in receptive_field_refused: the trained run is kept, the number not
    guessed."""
    device = next(model.parameters()).device
    try:
        rf, refused = receptive_field(model)[1], {}
    except ReceptiveFieldError as err:
        rf, refused = None, dict(receptive_field_refused=str(err))
    return dict(
        name=name, model=type(model).__name__, params=count_parameters(model), epochs=len(history), seed=seed,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        **condition_of(device, torch.get_num_threads(), hp), torch=torch.__version__, hyperparameters=hp,
        receptive_field=rf, **refused,
        history=history, total_seconds=total_seconds, commit=git_commit(),
        model_source_sha256=model_source_sha256(type(model)),
    )


def save_json(obj: dict, path: Path | str) -> Path:
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())
    return path


def save_run(record: dict, model: torch.nn.Module | None = None, results_dir: Path | str = RESULTS_DIR) -> Path:
    """Write <results_dir>/<name>.json (and .pt, the state_dict, when a model is given); return the json path."""
    results_dir = Path(results_dir)
    if model is not None:
        weights = io.BytesIO()
        torch.save(model.state_dict(), weights)
        atomic_write_bytes(results_dir / f"{record['name']}.pt", weights.getvalue())
    return save_json(record, results_dir / f"{record['name']}.json")


def load_record(path: Path | str) -> dict:
    return json.loads(Path(path).read_text())


def load_weights(model: torch.nn.Module, path: Path | str,
                 fix: str = "Re-create it by running the notebook that trains this model.") -> torch.nn.Module:
    """Load a state_dict saved by save_run (weights_only: a .pt file cannot run code). Raises ValueError naming
    the file, the model and the cause, followed by `fix` (what to do about it)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as err:
        raise ValueError(f"cannot load weights {path} into {type(model).__name__}: {type(err).__name__}: {err}. "
                         f"{fix}") from err
    return model


def without_ema(run: dict, name: str | None = None) -> dict:
    """The run record of the same training without its weight EMA, read from the run itself: its history's test
    metrics become the trained weights' own (raw_test_loss/raw_test_acc, which `fit` records beside the EMA's),
    its hyperparameters get ema=0, and `derived_from` names the run. Since the EMA never changes the trajectory,
    this is the run an ema=0 training with the same seed would make, at no training cost (total_seconds 0).
    ValueError if the run has no EMA or did not record its raw weights' accuracy (records made before fit did)."""
    if not run["hyperparameters"].get("ema"):
        raise ValueError(f"run {run['name']!r} trained without a weight EMA: there is nothing to remove")
    if not all("raw_test_acc" in row for row in run["history"]):
        raise ValueError(f"run {run['name']!r} did not record its raw weights' test accuracy (made before fit did); "
                         "train it again, or train the variant without the EMA itself")
    history = [{k: v for k, v in dict(row, test_loss=row["raw_test_loss"], test_acc=row["raw_test_acc"]).items()
                if not k.startswith("raw_")} for row in run["history"]]
    return dict(run, name=name or f"{run['name']} without EMA", history=history, total_seconds=0.0,
                hyperparameters={**run["hyperparameters"], "ema": 0.0}, derived_from=run["name"])


def with_ema_also(run: dict, name: str | None = None) -> dict:
    """The run record of the same training with its weight EMA's decay set to the run's `ema_also`, read from the
    run itself (like `without_ema`: the EMAs never change the trajectory, so this is, bit for bit, what an
    ema=ema_also training with the same seed would measure, at no training cost). ValueError if the run followed no
    second EMA."""
    decay = run["hyperparameters"].get("ema_also")
    if not decay:
        raise ValueError(f"run {run['name']!r} followed no second EMA (ema_also): there is nothing to read")
    history = [{k: v for k, v in dict(row, test_loss=row["ema_also_test_loss"], test_acc=row["ema_also_test_acc"]
                                      ).items() if not k.startswith("ema_also_")} for row in run["history"]]
    return dict(run, name=name or f"{run['name']} with EMA {decay}", history=history, total_seconds=0.0,
                hyperparameters={**run["hyperparameters"], "ema": decay, "ema_also": 0.0}, derived_from=run["name"])
