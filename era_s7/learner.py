"""The learner's check: a model class of one's own against the assignment, on several seeds (`check_model`), the one
function the notebook your_model and the command `python -m era_s7.tools.check` both call; and whether a check's
record is stale (`stale_problems`, for `make stale`).

The class is loaded and probed by `loader`, trained with the project's engine and a recipe (default step 3's) on
each seed (runs.train_seeds: on the CPU one seed per core, each in its own one-thread process), and judged rule by
rule (assignment.verdict). The record goes to results/checks/<name>.json, rewritten after every seed: an interrupted
check resumes, and the seeds already done by the same code, recipe and condition are not retrained."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from .assignment import (
    LAST,
    MAX_EPOCHS,
    PARAMS_LIMIT,
    TARGET,
    held_count,
    holds,
    last5_spread,
    parse_seeds,
    passes,
    run_summary,
    seed_list,
    seeds_phrase,
    verdict,
)
from .data import load_mnist
from .loader import ModelRefused, class_spec, load_class, make_class, probe
from .machine import select_device, usable_cores
from .receptive_field import ReceptiveFieldError, format_receptive_field, receptive_field
from .recipes import load_recipe, recipe_changes, run_hyperparameters
from .results import REPO_ROOT, RESULTS_DIR, RESULTS_ENV, load_record, model_source_sha256, save_json
from .runs import Run, reusable, train_seeds
from .summary import count_parameters

CHECKS_DIR = RESULTS_DIR / "checks"
DEFAULT_SEEDS = "1-5"
DEFAULT_RECIPE = "Model_3"  # step 3's recipe (recipes.RECIPES)


def seeds_report(record: dict) -> list[str]:
    """Each seed's last-5 test accuracies, min and mean, held or not; the hold rate; the mean of the last-5 means
    ± its standard error."""
    runs = record["runs"]
    lines = [f"{'seed':>4}  last {LAST} test accuracies (%)          min     mean   held ≥ {TARGET}"]
    for run in runs:
        s = run_summary(run)
        lines.append(f"{s['seed']:>4}  {' '.join(f'{a:6.2f}' for a in s['last5']):<36}{s['last5_min']:6.2f}  "
                     f"{s['last5_mean']:7.3f}   {'yes' if holds(run) else 'NO'}")
    if runs:
        held, n = held_count(record)
        mean, se, sd = last5_spread(runs)
        spread = f"± {se:.3f} (standard error; std over seeds {sd:.3f})" if n > 1 else "(one seed: no spread)"
        lines += [f"hold rate: {held} of {n} seeds ({100 * held / n:.0f} %)",
                  f"mean of the last-{LAST} means: {mean:.3f} % {spread}"]
    return lines


def shown(path: Path) -> str:
    """A path as printed: under `make notebooks`' staging folder, as results/...; in the repository, relative."""
    path = Path(path).resolve()
    staging = os.environ.get(RESULTS_ENV)
    if staging and path.is_relative_to(Path(staging).resolve()):
        return str(Path("results") / path.relative_to(Path(staging).resolve()))
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def resumed_from(record_path: Path) -> Path:
    """The record a check resumes from: its own file; under `make notebooks`, whose staging folder starts empty, the
    committed record of the same name (results/<same path>) while the staged one does not exist yet."""
    staging = os.environ.get(RESULTS_ENV)
    if record_path.is_file() or not staging or not record_path.resolve().is_relative_to(Path(staging).resolve()):
        return record_path
    return RESULTS_DIR / record_path.resolve().relative_to(Path(staging).resolve())


def default_name(spec: str) -> str:
    """The record's name for a spec: 'my_model.py:Net' -> 'my_model-Net', 'pkg.models:Net' -> 'pkg.models-Net'."""
    where, _, cls = spec.rpartition(":")
    return f"{Path(where).stem if where.endswith('.py') else where}-{cls}"


def check_model(model: type | str, seeds: list[int] | None = None, recipe: str | dict = DEFAULT_RECIPE,
                epochs: int | None = None, device: str = "auto", precision: str = "auto", smoke: bool = False,
                record_path: Path | str | None = None, data: dict | None = None, jobs: int = 0,
                in_process: bool = False) -> dict:
    """Check a model class (or a spec, 'path/to/model.py:Net' or 'package.module:Net') against the assignment,
    printing as it goes, and return the check's record, saved at `record_path` (default
    results/checks/<name>.json) after every seed. Seeds of that record made by the same code, recipe and
    condition are kept, not retrained; other runs there are replaced.

    `epochs`: default the recipe's, else 15. `smoke`: a tiny run (runs.SMOKE). `data`: MNIST as tensors
    (default: loaded on the device). On the CPU the seeds train `jobs` at a time (0: one per usable core), each
    in its own process pinned to a core with one thread (machine.pinned_pool); on a GPU, or with `in_process`,
    here, one after another (runs.train_seeds). ModelRefused before anything trains when the model cannot be
    checked."""
    seeds = sorted(set(seeds or parse_seeds(DEFAULT_SEEDS)))
    label, overrides = load_recipe(recipe)
    spec = model if isinstance(model, str) else None
    if spec is None:
        if record_path is None:
            raise ValueError("a class given as an object needs record_path (its notebook cell is saved beside it)")
        spec = class_spec(model, Path(record_path).with_suffix(".py"))
    record_path = Path(record_path or CHECKS_DIR / f"{default_name(spec)}.json")
    cls = load_class(spec)  # in every case: here and in each seed's process, the class of the same file
    probe_model = probe(cls)
    dev = select_device(device)
    hp = run_hyperparameters(overrides, epochs or overrides.get("epochs", MAX_EPOCHS), smoke, precision, dev)
    cell = not isinstance(model, str) and Path(spec.rpartition(":")[0]) == record_path.with_suffix(".py").resolve()
    record = announce(cls, spec, probe_model, record_path, cell, label, hp, smoke, seeds)

    pooled = dev.type == "cpu" and not in_process
    make = functools.partial(make_class, spec)  # in every case: here and in each seed's process, the same file's class
    asked = [Run(f"seed-{s}", make, hp, s, f"seed {s}") for s in seeds]
    resume = resumed_from(record_path)
    kept = kept_runs(asked, resume, record_path, dev, 1 if pooled else torch.get_num_threads())  # as train_seeds
    if data is None:
        data = load_mnist(device=dev)
    record["test_images"] = len(data["x_test"][:hp["test_subset"]])
    done = dict(kept)

    def save(i: int | None = None, run: dict | None = None) -> None:  # after every seed: an interrupted check resumes
        if run is not None:
            done[run["seed"]] = run
        record["runs"] = [done[s] for s in sorted(done)]
        record["verdict"] = verdict(record)
        record["passes"] = passes(record)
        save_json(record, record_path)

    save()
    train_seeds(asked, data, dev, (jobs or len(usable_cores())) if pooled else None,
                on_disk=[(shown(resume), r) for r in kept.values()], on_done=save)
    print()
    print("\n".join(seeds_report(record)))
    print()
    print("\n".join(record["verdict"]))
    print(f"saved: {shown(record_path)}")
    return record


def announce(cls: type, spec: str, probe_model: torch.nn.Module, record_path: Path, cell: bool, label: str, hp: dict,
             smoke: bool, seeds: list[int]) -> dict:
    """Print what is checked (the model, its parameters against the limit, its receptive field layer by layer or
    the tool's refusal, the recipe and what it changes, the seeds) and return the check's record, its runs still
    to come."""
    params = count_parameters(probe_model)
    print(f"model: {cls.__name__} (a notebook cell, saved beside the record as {record_path.with_suffix('.py').name})"
          if cell else f"model: {spec}")
    print(f"parameters: {params:,} trainable " + (f"(fewer than {PARAMS_LIMIT:,}: within the assignment's limit)"
          if params < PARAMS_LIMIT else f"(NOT fewer than {PARAMS_LIMIT:,}: over the assignment's limit; the check "
                                        "still trains it, and its verdict fails this rule)"))
    try:
        rows, rf = receptive_field(probe_model)
        refusal = None
        print(f"receptive field at the output: {rf} px (layer by layer, in input pixels)\n"
              f"{format_receptive_field(rows)}")
    except ReceptiveFieldError as err:
        rows, rf, refusal = [], None, str(err)
        print(f"receptive field: not computed, the tool refused: {refusal}")
    print(f"recipe: {label}, {hp['epochs']} epoch{'s' * (hp['epochs'] != 1)}{' (smoke: a tiny run)' if smoke else ''}; "
          f"what it changes from the defaults (recipes.HYPERPARAMETERS; the record keeps the whole recipe): "
          f"{recipe_changes(hp)}")
    print(f"seeds: {seed_list(seeds)}")
    return dict(name=record_path.stem, kind="check", model=cls.__name__, model_spec=spec_as_recorded(spec, record_path),
                model_source_sha256=model_source_sha256(cls), params=params, params_limit=PARAMS_LIMIT,
                receptive_field=rf, receptive_field_rows=rows, receptive_field_refusal=refusal, recipe=label,
                hyperparameters=hp, seeds=seeds, test_images=None, runs=[], verdict=[], passes=False)


def kept_runs(asked: list[Run], resume: Path, record_path: Path, device: torch.device, threads: int) -> dict[int, dict]:
    """seed -> the run of `resume` (the record a check resumes from) that the reuse rule keeps for each run asked
    (runs.reusable: the same code, recipe, seed and condition); says which it keeps and which it replaces.
    ValueError when `resume` is not a check's record (it is left as it is)."""
    previous = load_record(resume) if resume.is_file() else dict(kind="check", runs=[])
    if previous.get("kind") != "check":
        raise ValueError(f"{shown(record_path)} is not a check's record, and is left as it is: choose another name "
                         "(--name) or folder (--dir)")
    on_disk = [(shown(resume), r) for r in previous["runs"]]
    kept = {run.seed: match[1] for run in asked if (match := reusable(run, on_disk, device, threads))}
    dropped = [r["seed"] for _, r in on_disk if r["seed"] not in kept]
    if dropped:
        print(f"{shown(resume)} held runs of {seeds_phrase(dropped)} made by other code, recipe or condition, "
              "or of seeds not asked now: they are replaced")
    if kept:
        print(f"on disk in {shown(resume)}: {seeds_phrase(list(kept))}, by the same code, recipe and "
              "condition: kept, not retrained")
    return kept


def spec_as_recorded(spec: str, record_path: Path) -> str:
    """The spec in the record: a file beside the record by its name alone (it moves with the record), a file in
    the repository relative to it, else as given."""
    where, _, name = spec.rpartition(":")
    path = Path(where).resolve()
    if not path.is_file():
        return spec
    if path.parent == record_path.resolve().parent:
        return f"{path.name}:{name}"
    return f"{path.relative_to(REPO_ROOT)}:{name}" if path.is_relative_to(REPO_ROOT) else spec


def stale_problems(record: dict, path: Path | str) -> list[str]:
    """Problems with a check's record at `path` (what stale.stale_records says of the project's records): its class
    cannot be loaded again from the spec it records (a file beside the record by its name, a repository file
    relative to the repository), or its code has changed since the runs (source hash)."""
    path = Path(path)
    where, _, name = record["model_spec"].rpartition(":")
    for base in (path.parent, REPO_ROOT):
        if (base / where).is_file():
            where = str(base / where)
            break
    try:
        cls = load_class(f"{where}:{name}")
    except ModelRefused as err:
        return [f"{path.name}: its model cannot be loaded again: {err}"]
    sha = model_source_sha256(cls)
    if any(r["model_source_sha256"] != sha for r in record["runs"]) or record["model_source_sha256"] != sha:
        return [f"{path.name}: {record['model']} ({record['model_spec']}) was changed after its check (source hash "
                "differs); run the check again"]
    return []
