"""`make sweep`: train N seeds of named candidates and compare each with the baseline on the same seeds.

A candidate is a layer plan plus overrides of step 3's recipe. `--split validation` (the default) trains on
the first 50,000 training images and scores on the last 10,000: models are chosen there, never on the test
set, which scores only the final choice (`--split test`). On the CPU each (candidate, seed) run is one process
pinned to one core with one thread; on a GPU (`--device cuda`) `--jobs` processes share it. Results go to
<dir>/<candidate>-<split>.json, rewritten after every run, so an interrupted sweep resumes where it stopped
(seeds already in the file are not retrained). A file holds one condition (device and thread count): results
depend on both, and only runs made under the same condition are compared.

    python -m era_s7.sweep baseline head2 --seeds 1-8 --split validation --jobs 2
    python -m era_s7.sweep --table            # run nothing: print the table of every sweep on disk
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .data import ensure_mnist, load_mnist
from .model import RECIPES, Model_3, conv_block, head
from .report import LAST, TARGET, last_accuracies
from .results import RESULTS_DIR, load_record, make_record, save_json
from .training import check_hyperparameters, fit, select_device, usable_cores

SWEEPS_DIR = RESULTS_DIR / "sweeps"
SPLITS = ("validation", "test")
VALIDATION_SIZE = 10_000  # the last 10,000 training images
BASELINE = "baseline"


# ------------------------------------------------------------------ candidate layer plans (one change each)
class Head2(Model_3):
    """Model_3 with a two-layer head: GAP, 1x1 16->16 (ReLU, BN), 1x1 16->10 (7,856 parameters)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 16, 1, bias=False), nn.ReLU(),
                                  nn.BatchNorm2d(16), nn.Conv2d(16, 10, 1, bias=False), nn.Flatten())


class Squeeze(nn.Module):
    """Wider before the pool, a 1x1 squeeze after it (7,742 parameters, RF 28):
    1->10 (26), 10->16 (24), max-pool (12), 1x1 16->8, 8->16 (10), 16->16 (8), 16->16 (6), GAP, 1x1 16->10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(1, 10), conv_block(10, 16), nn.MaxPool2d(2),
            nn.Conv2d(16, 8, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(8),
            conv_block(8, 16), conv_block(16, 16), conv_block(16, 16))
        self.head = head(16)

    def forward(self, x):
        return self.head(self.features(x))


def separable(c_in: int, c_out: int) -> nn.Sequential:
    """Depthwise 3x3 on c_in, then pointwise 1x1 c_in->c_out, each followed by ReLU and BatchNorm."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False), nn.ReLU(), nn.BatchNorm2d(c_in),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(c_out))


class DS40(nn.Module):
    """Depthwise-separable, 40 channels after the first conv (7,832 parameters, RF 28):
    1->16 (26), sep 16->40 (24), max-pool (12), 3 x sep 40->40 (10, 8, 6), GAP, 1x1 40->10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_block(1, 16), separable(16, 40), nn.MaxPool2d(2),
                                      separable(40, 40), separable(40, 40), separable(40, 40))
        self.head = head(40)

    def forward(self, x):
        return self.head(self.features(x))


STEP3 = RECIPES["Model_3"]
# name: (model class, recipe). Every candidate differs from the baseline (today's Model_3) in one thing.
CANDIDATES = {
    BASELINE: (Model_3, STEP3),
    "lr02": (Model_3, {**STEP3, "lr": 0.2}),               # peak learning rate 0.2
    "elastic": (Model_3, {**STEP3, "elastic": 2.0}),       # + elastic distortion, up to 2 px
    "rot12": (Model_3, {**STEP3, "rotate_deg": 12.0}),     # rotation +-12 deg instead of +-8
    "ls0": (Model_3, {**STEP3, "label_smoothing": 0.0}),   # no label smoothing
    "head2": (Head2, STEP3),
    "squeeze": (Squeeze, STEP3),
    "ds40": (DS40, STEP3),
}


# ------------------------------------------------------------------ data, statistics
def split_data(data: dict, split: str) -> dict:
    """The training and scoring sets of a split: 'validation' holds out the last 10,000 training images
    (the test set is not in it at all); 'test' is the usual 60,000 / 10,000."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; allowed: {SPLITS}")
    if split == "test":
        return data
    n = len(data["x_train"]) - VALIDATION_SIZE
    return dict(x_train=data["x_train"][:n], y_train=data["y_train"][:n],
                x_test=data["x_train"][n:], y_test=data["y_train"][n:])


def parse_seeds(text: str) -> list[int]:
    """'1-8' or '1,3,5' or '1-4,9' -> sorted list of seeds."""
    seeds = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"seeds={text!r}: write e.g. '1-8', '1,3,5' or '1-4,9'") from None
    return sorted(seeds)


def last5_mean(run: dict) -> float:
    return statistics.mean(last_accuracies(run))


def paired_difference(candidate: dict[int, float], baseline: dict[int, float]) -> tuple[float, float, int]:
    """(mean, standard error, n) of candidate - baseline over the seeds both have."""
    diffs = [candidate[s] - baseline[s] for s in sorted(set(candidate) & set(baseline))]
    if len(diffs) < 2:
        return (diffs[0] if diffs else math.nan), math.nan, len(diffs)
    return statistics.mean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs)), len(diffs)


# ------------------------------------------------------------------ files
def sweep_path(candidate: str, split: str, sweeps_dir: Path = SWEEPS_DIR) -> Path:
    return Path(sweeps_dir) / f"{candidate}-{split}.json"


def load_sweep(candidate: str, split: str, sweeps_dir: Path = SWEEPS_DIR) -> dict:
    path = sweep_path(candidate, split, sweeps_dir)
    return load_record(path) if path.is_file() else dict(name=f"{candidate}-{split}", candidate=candidate,
                                                         split=split, runs=[])


def condition(run: dict) -> tuple[str, int]:
    return run.get("device_name"), run.get("threads")


def add_run(candidate: str, split: str, run: dict, sweeps_dir: Path = SWEEPS_DIR) -> Path:
    """Add one run to the candidate's sweep file (replacing a run of the same seed); atomic rewrite.
    ValueError if the file's runs were made under another condition (device, thread count)."""
    sweep = load_sweep(candidate, split, sweeps_dir)
    other = {condition(r) for r in sweep["runs"]} - {condition(run)}
    if other:
        raise ValueError(f"{sweep_path(candidate, split, sweeps_dir)} holds runs made on {sorted(other)}, this one on "
                         f"{condition(run)}: results depend on both; sweep into another folder (--dir)")
    sweep["runs"] = sorted([r for r in sweep["runs"] if r["seed"] != run["seed"]] + [run], key=lambda r: r["seed"])
    return save_json(sweep, sweep_path(candidate, split, sweeps_dir))


# ------------------------------------------------------------------ training
_DATA: dict = {}


def _init_worker(cores, device: str) -> None:
    """Pool initializer: one thread; on the CPU this worker takes the next free core, so runs never share one."""
    core = cores.get()
    if device == "cpu" and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)


def train_candidate(candidate: str, seed: int, split: str, epochs: int | None = None, data: dict | None = None,
                    device: str = "cpu", log=lambda line: None) -> dict:
    """One run: the candidate's model, initialised from `seed` (on the CPU, as make_model does), trained with
    its recipe on the split."""
    if candidate not in CANDIDATES:
        raise ValueError(f"candidate={candidate!r} is not known; allowed: {sorted(CANDIDATES)}")
    if data is None:
        if split not in _DATA:
            _DATA[split] = split_data(load_mnist(device=select_device(device)), split)
        data = _DATA[split]
    model_class, recipe = CANDIDATES[candidate]
    hp = check_hyperparameters({**recipe, **({"epochs": epochs} if epochs else {})})
    torch.manual_seed(seed)
    model = model_class().to(data["x_train"].device)
    start = time.perf_counter()
    history = fit(model, data, hp, seed=seed, log=log)
    return dict(make_record(f"{candidate}-seed{seed}", model, hp, seed, history, time.perf_counter() - start),
                candidate=candidate, split=split)


def _train_job(job):
    candidate, seed, split, epochs, device = job
    return candidate, train_candidate(candidate, seed, split, epochs, device=device)


def run_sweep(candidates: list[str], seeds: list[int], split: str, jobs: int, epochs: int | None = None,
              sweeps_dir: Path = SWEEPS_DIR, device: str = "cpu") -> None:
    """Train every (candidate, seed) not yet in its file, seed by seed across candidates (so that partial
    sweeps stay paired), `jobs` runs at once."""
    select_device(device)  # a device that is not there fails here, before anything starts
    todo = [(c, s, split, epochs, device) for s in seeds for c in candidates
            if s not in {r["seed"] for r in load_sweep(c, split, sweeps_dir)["runs"]}]
    print(f"sweep: {len(todo)} runs to train ({split} split, {jobs} at a time); "
          f"{len(candidates) * len(seeds) - len(todo)} already on disk", flush=True)
    if not todo:
        return
    ensure_mnist()
    start = time.perf_counter()
    cores = usable_cores()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Manager().Queue()
    for core in (cores * jobs)[:jobs]:
        queue.put(core)
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(queue, device)) as pool:
        for done, (candidate, run) in enumerate(pool.imap_unordered(_train_job, todo), 1):
            add_run(candidate, split, run, sweeps_dir)
            accs = last_accuracies(run)
            print(f"[{done}/{len(todo)} {time.perf_counter() - start:6.0f}s] {candidate:<10} seed {run['seed']:>3}  "
                  f"last-5 min {min(accs):.2f} mean {statistics.mean(accs):.2f}  ({run['total_seconds']:.0f} s)",
                  flush=True)


# ------------------------------------------------------------------ the table
def sweep_table(split: str, candidates: list[str] | None = None, sweeps_dir: Path = SWEEPS_DIR,
                baseline: str = BASELINE) -> str:
    """Markdown: one row per candidate, its last-5 statistics over seeds, and the paired difference of
    last-5 means against the baseline on the same seeds (mean +- standard error, and in standard errors)."""
    if candidates is None:
        candidates = [c for c in CANDIDATES if sweep_path(c, split, sweeps_dir).is_file()]
    base = {r["seed"]: last5_mean(r) for r in load_sweep(baseline, split, sweeps_dir)["runs"]}
    lines = [f"| candidate | params | seeds | last-5 mean (mean ± std) | held ≥ {TARGET} | "
             f"vs {baseline}, paired (± SE) | in SE | s / run |", "|---|---|---|---|---|---|---|---|"]
    for c in candidates:
        runs = load_sweep(c, split, sweeps_dir)["runs"]
        if not runs:
            continue
        means = {r["seed"]: last5_mean(r) for r in runs}
        held = sum(min(last_accuracies(r)) >= TARGET for r in runs)
        spread = statistics.stdev(means.values()) if len(means) > 1 else 0.0
        diff, se, n = paired_difference(means, base) if c != baseline else (math.nan, math.nan, 0)
        paired = f"{diff:+.3f} ± {se:.3f} ({n} seeds)" if n >= 2 else "—"
        in_se = f"{diff / se:+.1f}" if n >= 2 and se > 0 else "—"
        lines.append(f"| {c} | {runs[0]['params']:,} | {len(runs)} | {statistics.mean(means.values()):.3f} ± {spread:.3f} | "
                     f"{held}/{len(runs)} | {paired} | {in_se} | {statistics.mean(r['total_seconds'] for r in runs):.0f} |")
    return "\n".join(lines)


def seeds_table(candidate: str, split: str, sweeps_dir: Path = SWEEPS_DIR) -> str:
    """One line per seed: last-5 min, mean, held."""
    lines = [f"{'seed':>5}{'last-5 min':>12}{'last-5 mean':>13}  held"]
    for r in load_sweep(candidate, split, sweeps_dir)["runs"]:
        accs = last_accuracies(r)
        lines.append(f"{r['seed']:>5}{min(accs):>12.2f}{statistics.mean(accs):>13.2f}  "
                     f"{'yes' if min(accs) >= TARGET else 'NO'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="*", help=f"candidate names (default: all); known: {', '.join(CANDIDATES)}")
    parser.add_argument("--seeds", default="1-8", help="e.g. 1-8, 1,3,5 (default 1-8)")
    parser.add_argument("--split", default="validation", choices=SPLITS)
    parser.add_argument("--jobs", type=int, default=0, help="runs at once, one core each; 0: one per usable core")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke runs)")
    parser.add_argument("--device", default="cpu", help="cpu (one pinned core per run) or cuda (--jobs runs share it)")
    parser.add_argument("--dir", type=Path, default=SWEEPS_DIR, help="where the sweep files are (one condition each)")
    parser.add_argument("--table", action="store_true", help="train nothing: print the tables of the sweeps on disk")
    args = parser.parse_args(argv)
    candidates = args.candidates or list(CANDIDATES)
    unknown = sorted(set(candidates) - set(CANDIDATES))
    if unknown:
        print(f"error: unknown candidate(s) {unknown}; known: {sorted(CANDIDATES)}", file=sys.stderr)
        return 2
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.table:
        run_sweep(candidates, seeds, args.split, args.jobs or len(usable_cores()), args.epochs, args.dir, args.device)
        for c in candidates:
            print(f"\n{c} ({args.split} split)\n{seeds_table(c, args.split, args.dir)}")
    chosen = None if args.table else [BASELINE, *[c for c in candidates if c != BASELINE]]
    print(f"\n{sweep_table(args.split, chosen, args.dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
