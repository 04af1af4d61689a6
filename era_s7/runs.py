"""Runs of seeds: one run trained and recorded, and the one runner of many (`train_seeds`), which
every multi-seed job calls: the notebooks' studies (`train_runs`), the model check and the search's sweeps."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import torch
from torch import nn

from .assignment import runs_of
from .machine import POOL_DATA, condition_of, pinned_pool, run_condition, usable_cores
from .model import MODELS
from .recipes import check_hyperparameters
from .results import (
    RESULTS_DIR,
    RESULTS_ENV,
    load_record,
    make_record,
    model_source_sha256,
    save_json,
    save_run,
    without_ema,
)
from .training import fit, format_epoch


# ------------------------------------------------------------------ one run
def results_path(results_dir: str | Path | None = None) -> Path:
    """Where a run is written: `results_dir`, else the staging folder of `make notebooks` (ERA_S7_RESULTS_DIR),
    else the repository's results/."""
    return Path(results_dir or os.environ.get(RESULTS_ENV) or RESULTS_DIR)


def figures_path(results_dir: str | Path | None, name: str) -> Path:
    """Where a notebook saves a figure: <results_path>/figures/<name>."""
    return results_path(results_dir) / "figures" / name


def build(make: Callable[[], nn.Module], seed: int, device: torch.device | str = "cpu") -> nn.Module:
    """A fresh model on `device`, its initial weights fixed by the seed: the global generator seeded, then `make()`
    (a model class, or a function returning a model), as model.make_model does for the models by name."""
    torch.manual_seed(seed)
    return make().to(device)


def train(name: str, model: nn.Module, data: dict, hp: dict, seed: int, results_dir=None, log=print,
          save: bool = True) -> dict:
    """fit, then record the run (results.make_record); saved as <results_path>/<name>.json and .pt unless
    save=False. Returns the record."""
    start = time.perf_counter()
    history = fit(model, data, hp, seed=seed, log=log)
    record = make_record(name, model, hp, seed, history, time.perf_counter() - start)
    if save:
        save_run(record, model, results_path(results_dir))
    return record


# ------------------------------------------------------------------ the runner
class Run(NamedTuple):
    """One run of a multi-seed job. `make` builds its model and must pickle for a pool's process: a model class, or
    functools.partial of a module-level function. `label` is printed before its epochs."""
    name: str
    make: Callable[[], nn.Module]
    hp: dict
    seed: int
    label: str


def same_run(record: dict, sha: str, hp: dict, seed: int, condition: tuple) -> bool:
    """The reuse rule: a record stands in for a run when its model code (source hash), hyperparameters (a record
    made before a hyperparameter existed ran with its default, which every new one has "off"), seed, condition
    (machine.run_condition: processor, arithmetic, threads, precision, memory format) and torch version are the run's
    own: another torch computes other floats (the floors' torch 2.8 does, tests/test_engine_history.py)."""
    try:
        recorded = check_hyperparameters(record["hyperparameters"])
    except (KeyError, ValueError):  # a hyperparameter since removed: not this code's recipe
        return False
    return (record.get("model_source_sha256"), recorded, record.get("seed"), run_condition(record),
            record.get("torch")) == (sha, hp, seed, condition, torch.__version__)


def reusable(run: Run, on_disk: Iterable[tuple[str, dict]], device: torch.device | str,
             threads: int) -> tuple[str, dict] | None:
    """The first (where, record) of `on_disk` that stands in for `run` (`same_run`) when it would train on `device`
    with `threads` threads, renamed as the run; else None. (The model is built once to hash its code, the global
    random generator's state kept.)"""
    if not on_disk:
        return None
    with torch.random.fork_rng(devices=[]):
        sha = model_source_sha256(type(build(run.make, run.seed)))
    here = tuple(condition_of(device, threads, run.hp).values())
    match = next(((w, r) for w, r in on_disk if same_run(r, sha, run.hp, run.seed, here)), None)
    return (match[0], dict(match[1], name=run.name)) if match else None


def _train_pooled(job) -> tuple[int, dict]:
    """A pinned_pool worker's run, quietly on the pool's data (its prints would not reach the caller), with the
    run's index: the pool returns runs in any order."""
    i, name, make, hp, seed, device = job
    return i, train(name, build(make, seed, device), POOL_DATA, hp, seed, log=lambda line: None, save=False)


def train_seeds(runs: list[Run], data: dict, device: torch.device | str, jobs: int | None = None,
                on_disk: Iterable[tuple[str, dict]] = (), on_done: Callable[[int, dict], None] | None = None,
                quiet: bool = False) -> list[dict]:
    """Train every run that no record on disk stands in for (`same_run`), and return the runs' records in order.

    `jobs`: None trains here, one run after another with this process's threads, each run's epochs printed as
    they end; a number trains in a pinned_pool of that many one-thread processes (on the CPU each pinned to its
    own core; on a GPU sharing it), the runs in any order, their epochs printed in the runs' order as they arrive.
    `on_disk`: (where, record) pairs that may stand in for a run; a reused record takes the run's name.
    `on_done(i, record)` is called here as each trained run ends (not for reused ones): a caller writes its file
    there, so an interrupted job keeps every run done. `quiet`: nothing is printed (the caller reports)."""
    device = torch.device(device)
    threads = 1 if jobs else torch.get_num_threads()
    on_disk = list(on_disk)
    found = {i: match for i, run in enumerate(runs) if (match := reusable(run, on_disk, device, threads))}
    todo = [i for i in range(len(runs)) if i not in found]
    workers = min(jobs or 1, len(todo))
    pool = pinned_pool(workers, str(device), data) if jobs and todo else None
    if pool is not None and not quiet:
        shared = "one process per core" if device.type == "cpu" else f"processes sharing the {device.type} device"
        print(f"{len(todo)} runs to train, {workers} at a time ({shared}, one thread each)", flush=True)
    done = {i: record for i, (_, record) in found.items()}
    finished = False
    try:
        arrived = (pool.imap_unordered(_train_pooled, [(i, *runs[i][:4], str(device)) for i in todo])
                   if pool is not None else None)
        for i, run in enumerate(runs):
            if not quiet and i in found:
                where, record = found[i]
                print(f"--- {run.label}: a run of the same code, recipe and seed, made on {record['device_name']} "
                      f"with {record['threads']} thread(s), is on disk ({where}); reused, not retrained. Its epochs:")
            elif not quiet:
                print(f"--- {run.label}", flush=True)
            if i not in done and pool is None:  # trained here: its epochs are printed as they end
                done[i] = train(run.name, build(run.make, run.seed, device), data, run.hp, run.seed,
                                log=(lambda line: None) if quiet else print, save=False)
                if on_done:
                    on_done(i, done[i])
                continue
            while i not in done:  # any run that ends is handed on at once; they are printed in order
                j, record = next(arrived)
                done[j] = record
                if on_done:
                    on_done(j, record)
            if not quiet:
                for row in done[i]["history"]:
                    print(format_epoch(row, done[i]["epochs"]))
        finished = True
    finally:
        if pool is not None:  # interrupted: the runs in training are stopped; those done were handed on
            pool.close() if finished else pool.terminate()
            pool.join()
    return [done[i] for i in range(len(runs))]


# ------------------------------------------------------------------ the notebooks' studies
def train_runs(name: str, runs: list[tuple[str, str, dict, int]], data: dict, device, results_dir=None,
               reuse: tuple[str, ...] = (), jobs: int | None = None,
               without_ema_of: dict[str, str] | None = None) -> dict:
    """A study: each (run name, model name, hyperparameters, seed) trained by `train_seeds`, all saved in one
    record, results/<name>.json ({"name", "runs": [...]}), which is returned. On the CPU the runs go `jobs` at a
    time (default: one per usable core) in one-thread processes pinned to their cores; elsewhere one at a time, here.

    `reuse` names committed results (e.g. "step3", "seeds", or a pattern under results/ such as "sweeps/**/*-test":
    the search's runs on the test split) whose runs stand in for a run (`same_run`) instead of training it again;
    only runs scored on the test set count (a sweep's validation-split runs never do). `without_ema_of` maps a
    variant's name to the name of runs trained with a weight EMA: each of those runs also yields, untrained, its run
    without the EMA (`results.without_ema`), under the variant's name, after the trained runs."""
    device = torch.device(device)
    jobs = min(jobs or len(usable_cores()), len(runs)) if device.type == "cpu" else 1
    root = Path(results_dir or RESULTS_DIR)
    # each keeps the file it was first trained into (a run of a study that reused it names the sweep file)
    committed = []
    for pattern in reuse:
        for path in sorted(root.glob(f"{pattern}.json")):
            for run in runs_of(load_record(path)):
                if run.get("split", "test") == "test":
                    first = run.get("reused_from", str(path.relative_to(root)))
                    kept = {k: v for k, v in run.items() if k not in ("candidate", "split")}
                    committed.append((f"results/{first}", dict(kept, reused_from=first)))
    records = train_seeds([Run(run_name, MODELS[model_name], hp, seed, f"{run_name}: {model_name}, seed {seed}")
                           for run_name, model_name, hp, seed in runs],
                          data, device, jobs if jobs > 1 else None, on_disk=committed)
    for variant, source in (without_ema_of or {}).items():
        derived = [without_ema(r, variant) for r in records if r["name"] == source]
        if not derived:
            raise ValueError(f"without_ema_of: no run is named {source!r}; run names: "
                             f"{sorted({r['name'] for r in records})}")
        print(f"--- {variant}: the {len(derived)} run(s) of {source!r} read without their EMA (the trained weights "
              "themselves, evaluated after every epoch beside the EMA: the same trajectory, no training of its own)")
        records += derived
    record = dict(name=name, runs=records)
    save_json(record, results_path(results_dir) / f"{name}.json")
    return record
