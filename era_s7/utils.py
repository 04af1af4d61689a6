"""What the notebooks import: `from era_s7 import utils`. The logic lives in the sibling modules by concern."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from .data import DataError, ensure_mnist, load_mnist, verify_mnist  # noqa: F401
from .digits import NoInkError, Prediction, classify, load_grey, mnist_style, render_digit, to_input  # noqa: F401
from .plots import (plot_augmentations, plot_confusion, plot_history, plot_misclassified,  # noqa: F401
                    plot_runs, plot_samples, plot_your_digit)
from .parameters import ParameterError, check_parameters  # noqa: F401
from .receptive_field import (ReceptiveFieldError, count_parameters, format_receptive_field,  # noqa: F401
                              receptive_field, summary)
from .assignment import run_summary, runs_of  # noqa: F401
from .report import last_epochs_table, render_result, runs_table, variants_table  # noqa: F401
from .results import (RESULTS_DIR, RESULTS_ENV, arithmetic, condition_of, device_name, load_record,  # noqa: F401
                      load_weights, make_record, run_condition, save_json, save_run)
from .training import (HYPERPARAMETERS, PRECISIONS, augment, check_hyperparameters, evaluate, fit,  # noqa: F401
                       format_epoch, pinned_pool, predict, resolve_precision, select_device, set_threads, usable_cores,
                       without_ema)

SMOKE = dict(epochs=1, train_subset=512, test_subset=500)  # a tiny run that exercises every cell


def results_path(results_dir: str | Path | None = None) -> Path:
    """Where a notebook writes: the `results_dir` parameter, else the staging folder of `make notebooks`,
    else the repository's results/."""
    return Path(results_dir or os.environ.get(RESULTS_ENV) or RESULTS_DIR)


def figures_path(results_dir: str | Path | None, name: str) -> Path:
    return results_path(results_dir) / "figures" / name


def run_hyperparameters(recipe: dict, epochs: int, smoke: bool, precision: str = "fp32",
                        device: torch.device | str = "cpu") -> dict:
    """The recipe with the notebook's `epochs` and `precision` (resolve_precision: "auto" is bf16 on a CPU with
    bf16 units), validated, then shrunk to a smoke run when asked."""
    hp = check_hyperparameters({**recipe, **PRECISIONS[resolve_precision(precision, device)], "epochs": epochs})
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


def _train_pooled(job) -> dict:
    """A pinned_pool worker's run: the model freshly made from its seed, trained on the pool's data, quietly
    (a worker's prints would not reach the notebook: train_runs prints the epochs when the run is back)."""
    from .model import make_model
    from .training import POOL_DATA

    run_name, model_name, hp, seed, device = job
    return train(run_name, make_model(model_name, seed, device), POOL_DATA, hp, seed, log=lambda line: None, save=False)


def train_runs(name: str, runs: list[tuple[str, str, dict, int]], data: dict, device, results_dir=None,
               reuse: tuple[str, ...] = (), jobs: int | None = None, without_ema_of: dict[str, str] | None = None) -> dict:
    """Train each (run name, model name, hyperparameters, seed); save one record with all of them
    as results/<name>.json ({"name", "runs": [...]}) and return it. `without_ema_of` maps a variant's name to the
    name of runs trained with a weight EMA: each of those runs also yields, untrained, its run without the EMA
    (`training.without_ema`), under the variant's name, after the trained runs.

    On the CPU the runs go `jobs` at a time (default: one per usable core), each in its own process pinned to
    its own core with one thread; elsewhere one at a time. `reuse` names committed results (e.g. "step3",
    "seeds", or a pattern under results/ such as "sweeps/**/*-test": the search's runs on the test split) whose runs
    stand in for a run, instead of training it again, when their model code, hyperparameters and seed are the run's
    own, they were trained on the full training set and scored on the test set (a sweep's validation-split runs
    never are), and they were made under this very condition."""
    from .model import MODELS, make_model
    from .results import model_source_sha256

    device = torch.device(device)
    jobs = min(jobs or len(usable_cores()), len(runs)) if device.type == "cpu" else 1
    root = Path(results_dir or RESULTS_DIR)
    # each keeps the file it was first trained into (a run of a study that reused it names the sweep file)
    committed = [dict(run, reused_from=run.get("reused_from", str(p.relative_to(root)))) for r in reuse
                 for p in sorted(root.glob(f"{r}.json")) for run in runs_of(load_record(p))
                 if run.get("split", "test") == "test"]
    # results depend on the processor and the thread count too: reuse only a run made under this very condition
    threads = 1 if jobs > 1 else torch.get_num_threads()
    found = {}  # index in runs -> the committed run that stands in for it
    for i, (run_name, model_name, hp, seed) in enumerate(runs):
        # a record made before a hyperparameter existed ran with its default (every new one defaults to "off")
        same = [r for r in committed if (r["model"], check_hyperparameters(r["hyperparameters"]), r["seed"],
                                         r["model_source_sha256"], run_condition(r)) ==
                (model_name, hp, seed, model_source_sha256(MODELS[model_name]),
                 tuple(condition_of(device, threads, hp).values()))]
        if same:
            found[i] = dict({k: v for k, v in same[0].items() if k not in ("candidate", "split")}, name=run_name)
    todo = [(*run, str(device)) for i, run in enumerate(runs) if i not in found]
    workers = min(jobs, len(todo))
    pool = pinned_pool(workers, "cpu", data) if jobs > 1 and todo else None
    if pool is not None:
        print(f"{len(todo)} runs to train, {workers} at a time (one process per core, one thread each)")
        trained = pool.imap(_train_pooled, todo)
    records = []
    try:
        for i, (run_name, model_name, hp, seed) in enumerate(runs):
            if i in found:
                print(f"--- {run_name}: {model_name}, seed {seed}: a run of the same code, recipe and seed, made on "
                      f"{found[i]['device_name']} with {found[i]['threads']} thread(s), is on disk (results/"
                      f"{found[i]['reused_from']}); reused, not retrained. Its epochs:")
            else:
                print(f"--- {run_name}: {model_name}, seed {seed}")
            if i in found or pool is not None:
                record = found[i] if i in found else next(trained)
                for row in record["history"]:
                    print(format_epoch(row, record["epochs"]))
            else:  # trained here: its epochs are printed as they end
                record = train(run_name, make_model(model_name, seed, device), data, hp, seed, save=False)
            records.append(record)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    for variant, source in (without_ema_of or {}).items():
        derived = [without_ema(r, variant) for r in records if r["name"] == source]
        if not derived:
            raise ValueError(f"without_ema_of: no run is named {source!r}; run names: {sorted({r['name'] for r in records})}")
        print(f"--- {variant}: the {len(derived)} run(s) of {source!r} read without their EMA (the trained weights "
              "themselves, evaluated after every epoch beside the EMA: the same trajectory, no training of its own)")
        records += derived
    record = dict(name=name, runs=records)
    save_json(record, results_path(results_dir) / f"{name}.json")
    return record
