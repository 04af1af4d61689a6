"""What the notebooks import: `from era_s7 import utils`. The logic lives in the sibling modules by concern."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from .data import DataError, ensure_mnist, load_mnist, verify_mnist  # noqa: F401
from .notebooks import RESULTS_ENV
from .plots import (plot_augmentations, plot_confusion, plot_history, plot_misclassified,  # noqa: F401
                    plot_runs, plot_samples)
from .receptive_field import count_parameters, format_receptive_field, receptive_field, summary  # noqa: F401
from .report import last_epochs_table, render_result, run_summary, runs_table  # noqa: F401
from .results import RESULTS_DIR, device_name, load_record, load_weights, make_record, save_json, save_run  # noqa: F401
from .training import (HYPERPARAMETERS, augment, check_hyperparameters, evaluate, fit, format_epoch,  # noqa: F401
                       predict, select_device, set_threads, usable_cores)

SMOKE = dict(epochs=1, train_subset=512, test_subset=500)  # a tiny run that exercises every cell


def results_path(results_dir: str | Path | None = None) -> Path:
    """Where a notebook writes: the `results_dir` parameter, else the staging folder of `make notebooks`,
    else the repository's results/."""
    return Path(results_dir or os.environ.get(RESULTS_ENV) or RESULTS_DIR)


def figures_path(results_dir: str | Path | None, name: str) -> Path:
    return results_path(results_dir) / "figures" / name


def run_hyperparameters(recipe: dict, epochs: int, smoke: bool) -> dict:
    """The recipe with the notebook's `epochs`, validated, then shrunk to a smoke run when asked."""
    hp = check_hyperparameters({**recipe, "epochs": epochs})
    return {**hp, **SMOKE} if smoke else hp


def environment(device: torch.device) -> str:
    """One line: what this run ran on."""
    name = device_name(device) + ("" if device.type == "cuda" else f", {len(usable_cores())} cores")
    return (f"torch {torch.__version__} | device {device.type} ({name}) | {torch.get_num_threads()} threads | "
            f"python {platform.python_version()}")


def train(name: str, model: torch.nn.Module, data: dict, hp: dict, seed: int, results_dir=None,
          log=print, save: bool = True) -> dict:
    """fit, then record the run (and save results/<name>.json and .pt unless save=False); returns the record."""
    start = time.perf_counter()
    history = fit(model, data, hp, seed=seed, log=log)
    record = make_record(name, model, hp, seed, history, time.perf_counter() - start)
    if save:
        save_run(record, model, results_path(results_dir))
    return record


def train_runs(name: str, runs: list[tuple[str, str, dict, int]], data: dict, device, results_dir=None,
               reuse: tuple[str, ...] = ()) -> dict:
    """Train each (run name, model name, hyperparameters, seed) in turn; save one record with all of them
    as results/<name>.json ({"name", "runs": [...]}) and return it.

    `reuse` names committed single-run results (e.g. "step3") that stand in for a run, instead of training
    it again, when their model code, hyperparameters and seed are the run's own."""
    from .model import MODELS, make_model
    from .results import model_source_sha256

    committed = [load_record(p) for r in reuse if (p := Path(results_dir or RESULTS_DIR) / f"{r}.json").is_file()]
    # results depend on the processor and the thread count too: reuse only a run made under this very condition
    here = (device_name(torch.device(device)), torch.get_num_threads())
    records = []
    for run_name, model_name, hp, seed in runs:
        same = [r for r in committed if (r["model"], r["hyperparameters"], r["seed"], r["model_source_sha256"],
                                         r.get("device_name"), r.get("threads")) ==
                (model_name, hp, seed, model_source_sha256(MODELS[model_name]), *here)]
        if same:
            print(f"--- {run_name}: {model_name}, seed {seed}: results/{same[0]['name']}.json has this very run "
                  f"(same code, recipe, seed, {here[0]} and {here[1]} threads); reused, not retrained. Its epochs:")
            for row in same[0]["history"]:
                print(format_epoch(row, same[0]["epochs"]))
            records.append(dict(same[0], name=run_name))
            continue
        print(f"--- {run_name}: {model_name}, seed {seed}")
        records.append(train(run_name, make_model(model_name, seed, device), data, hp, seed, save=False))
    record = dict(name=name, runs=records)
    save_json(record, results_path(results_dir) / f"{name}.json")
    return record
