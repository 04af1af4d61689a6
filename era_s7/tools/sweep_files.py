"""The search's sweep files: where a candidate's runs on a split are (<dir>/<candidate>-<split>.json; a round's in its
own folder and its precision's, `round_dir`), how they are read (`load_sweep`, each seed's last-5 mean or minimum)
and how a run is added (`add_run`: one condition a file). The runner (sweep.py), the decision rules (decision.py)
and the generator of docs/search.md (search_doc.py) read them through here."""
from __future__ import annotations

import statistics
from pathlib import Path

from ..assignment import last_accuracies
from ..machine import CONDITION_KEYS, run_condition
from ..recipes import PRECISIONS
from ..results import RESULTS_DIR, load_record, save_json
from .rounds import ROUND_DIRS, ROUNDS

SWEEPS_DIR = RESULTS_DIR / "sweeps"


def round_dir(sweeps_dir: Path, round_: str) -> Path:
    """The folder of a round's sweep files under the root `sweeps_dir`: its own (ROUND_DIRS), then its precision's."""
    _, _, precision = ROUNDS[round_]
    return precision_dir(Path(sweeps_dir) / ROUND_DIRS.get(round_, ""), precision)


def precision_dir(sweeps_dir: Path, precision: str) -> Path:
    """Where a precision's sweep files are: fp32 in `sweeps_dir` itself, bf16 in its bf16/ folder."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; allowed: {sorted(PRECISIONS)}")
    return Path(sweeps_dir) if precision == "fp32" else Path(sweeps_dir) / precision


def last5_mean(run: dict) -> float:
    return statistics.mean(last_accuracies(run))


def sweep_path(candidate: str, split: str, sweeps_dir: Path = SWEEPS_DIR) -> Path:
    return Path(sweeps_dir) / f"{candidate}-{split}.json"


def load_sweep(candidate: str, split: str, sweeps_dir: Path = SWEEPS_DIR) -> dict:
    path = sweep_path(candidate, split, sweeps_dir)
    return load_record(path) if path.is_file() else dict(name=f"{candidate}-{split}", candidate=candidate,
                                                         split=split, runs=[])


def last5_means(candidate: str, split: str, sweeps_dir: Path = SWEEPS_DIR) -> dict[int, float]:
    """seed -> last-5 mean of the candidate's runs on disk."""
    return {r["seed"]: last5_mean(r) for r in load_sweep(candidate, split, sweeps_dir)["runs"]}


def add_run(candidate: str, split: str, run: dict, sweeps_dir: Path = SWEEPS_DIR) -> Path:
    """Add one run to the candidate's sweep file (replacing a run of the same seed); atomic rewrite.
    ValueError if the file's runs were made under another condition (`machine.run_condition`)."""
    sweep = load_sweep(candidate, split, sweeps_dir)
    other = {run_condition(r) for r in sweep["runs"]} - {run_condition(run)}
    if other:
        raise ValueError(f"{sweep_path(candidate, split, sweeps_dir)} holds runs made on {sorted(other)}, this one on "
                         f"{run_condition(run)}: results depend on each; sweep into another folder (--dir)")
    sweep["runs"] = sorted([r for r in sweep["runs"] if r["seed"] != run["seed"]] + [run], key=lambda r: r["seed"])
    sweep["condition"] = dict(zip(CONDITION_KEYS, run_condition(run)))  # the one condition of the file's runs
    return save_json(sweep, sweep_path(candidate, split, sweeps_dir))


def last5_mins(candidate: str, split: str, sweeps_dir: Path = SWEEPS_DIR) -> dict[int, float]:
    """seed -> last-5 minimum of the candidate's runs on disk."""
    return {r["seed"]: min(last_accuracies(r)) for r in load_sweep(candidate, split, sweeps_dir)["runs"]}
