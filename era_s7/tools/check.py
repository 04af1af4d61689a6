"""`python -m era_s7.tools.check path/to/model.py:ClassName`: does your model pass the assignment, on several seeds?

The assignment's rules: fewer than 8,000 parameters (counted as it counts them: the trainable ones), at most 15
epochs, and ≥ 99.4 % test accuracy on every one of the last 5 epochs, *consistently*, which one run cannot show.
The check loads the class (from a file, `path/to/model.py:Net`, or a module, `package.module:Net`), builds it
with no arguments and refuses, before anything trains, a model that fails to build, fails on a (1, 1, 28, 28)
input, or does not give (n, 10) outputs, with a message that says which and why. Then it prints the parameters,
the receptive field at the output layer by layer (or the tool's refusal, named), trains the model with the
project's engine and a recipe (default step 3's) on each seed (on the CPU one seed per core, each in its own
one-thread process, as the seeds study does), and gives a verdict per rule in words, with the seeds it rests on.
A model over the parameter limit is reported failing that rule, and the rest still runs.

The record goes to results/checks/<name>.json, rewritten after every seed: an interrupted check resumes, and the
seeds already done by the same code, recipe and condition are not retrained.

    python -m era_s7.tools.check my_model.py:Net                      # seeds 1-5, step 3's recipe, 15 epochs
    python -m era_s7.tools.check mypackage.models:Net --seeds 1-8 --recipe my_recipe.json
    make check-model MODEL=my_model.py:Net
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import importlib.util
import json
import linecache
import os
import sys
from pathlib import Path

import torch
from torch import nn

from ..assignment import (LAST, MAX_EPOCHS, PARAMS_LIMIT, TARGET, held_count, last5_spread, parse_seeds, passes,
                          run_summary, seed_list, seeds_phrase, verdict)
from ..data import atomic_write_bytes, load_mnist
from ..machine import select_device, usable_cores
from ..receptive_field import ReceptiveFieldError, count_parameters, format_receptive_field, receptive_field
from ..recipes import PRECISIONS, RECIPES, recipe_changes, run_hyperparameters
from ..results import REPO_ROOT, RESULTS_DIR, RESULTS_ENV, load_record, model_source_sha256, save_json
from ..runs import Run, reusable, train_seeds

CHECKS_DIR = RESULTS_DIR / "checks"
DEFAULT_SEEDS = "1-5"
DEFAULT_RECIPE = "Model_3"  # step 3's recipe (model.RECIPES)
FILE_ATTRIBUTE = "__era_s7_check_file__"  # set on a module loaded from a file by `load_class`


class ModelRefused(ValueError):
    """The model cannot be checked: it fails to load, to build, to run on a (1, 1, 28, 28) input, or to give
    (n, 10) outputs. The message says which and why; nothing has trained."""


# ------------------------------------------------------------------ loading the learner's class
def load_file(path: Path | str):
    """The module of a Python file, imported under a name of its own (so that its classes' source can be hashed,
    and each seed's process imports the same file under the same name); its folder goes on sys.path, so that it
    may import its neighbours."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ModelRefused(f"{path} is not a file: write path/to/model.py:ClassName (or package.module:ClassName)")
    name = f"era_s7_check_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, FILE_ATTRIBUTE, None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ModelRefused(f"{path} cannot be imported as Python (a .py file is needed)")
    module = importlib.util.module_from_spec(spec)
    setattr(module, FILE_ATTRIBUTE, str(path))
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ModelRefused(f"{path} fails to import: {type(err).__name__}: {err}") from err
    return module


def load_class(spec: str) -> type:
    """The class `spec` names: 'path/to/model.py:ClassName' (a file) or 'package.module:ClassName' (importable).
    ModelRefused, saying why, when it cannot be loaded or is not a torch.nn.Module class."""
    where, colon, name = spec.rpartition(":")
    if not colon or not where or not name:
        raise ModelRefused(f"{spec!r}: write path/to/model.py:ClassName or package.module:ClassName")
    if where.endswith(".py") or os.sep in where or "/" in where or Path(where).is_file():
        module = load_file(where)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as err:
            raise ModelRefused(f"module {where!r} fails to import: {type(err).__name__}: {err} (a file is written "
                               "path/to/model.py:ClassName)") from err
    try:
        cls = module
        for part in name.split("."):
            cls = getattr(cls, part)
    except AttributeError:
        found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == module.__name__)
        raise ModelRefused(f"{where} has no {name!r}; the torch.nn.Module classes it defines: {found or 'none'}") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ModelRefused(f"{spec}: {name} is a {type(cls).__name__}, not a torch.nn.Module class")
    return cls


def class_spec(cls: type, beside: Path) -> str:
    """A spec from which each seed's process loads `cls` again: its file's, or its module's; for a class defined
    in a notebook cell (module __main__ without a file), the cell is first saved as `beside` (a .py file):
    the cell must hold the class and its imports, nothing that should not run again."""
    module = sys.modules.get(cls.__module__)
    if "<locals>" in cls.__qualname__:
        raise ModelRefused(f"{cls.__qualname__} is defined inside a function: define it at the top level of a file, "
                           "a module or a notebook cell")
    if getattr(module, FILE_ATTRIBUTE, None):
        return f"{getattr(module, FILE_ATTRIBUTE)}:{cls.__qualname__}"
    if cls.__module__ != "__main__":
        return f"{cls.__module__}:{cls.__qualname__}"
    if getattr(module, "__file__", None):  # a script run as __main__: imported again under a name of its own
        return f"{Path(module.__file__).resolve()}:{cls.__qualname__}"
    code = next((f.__code__ for f in vars(cls).values() if hasattr(f, "__code__")), None)
    lines = linecache.getlines(code.co_filename) if code is not None else []
    if not lines:
        raise ModelRefused(f"the source of {cls.__name__} is not found (it defines no method of its own, or was not "
                           "defined in a notebook cell): put it in a file and pass path/to/model.py:ClassName")
    beside.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(beside, (f"# The notebook cell that defines {cls.__name__}, saved by era_s7.tools.check: each "
                                        "seed's process imports it from here.\n" + "".join(lines)).encode())
    return f"{beside.resolve()}:{cls.__qualname__}"


def make_class(spec: str) -> nn.Module:
    """The model of a spec, built with no arguments (runs.build seeds it first): `make` of a check's runs, which
    pickles for a pool's process, where the class is loaded again from the same file."""
    return load_class(spec)()


def probe(cls: type) -> nn.Module:
    """The built model, after the checks that must pass before anything trains: it builds with no arguments,
    has trainable parameters, runs on a (1, 1, 28, 28) input (eval mode) and gives (1, 10), gives (2, 10) for a
    batch of 2 in training mode, and a backward pass through that works. ModelRefused names which and why."""
    name = cls.__name__
    try:
        model = cls()
    except Exception as err:
        raise ModelRefused(f"{name} fails to build: {name}() raised {type(err).__name__}: {err} (the check builds "
                           "the class with no arguments: give every argument of __init__ a default)") from err
    if count_parameters(model) == 0:
        raise ModelRefused(f"{name} has no trainable parameters: there is nothing to train")
    shape_hint = ("one score per digit: e.g. end with a 1x1 conv to 10 channels after global pooling, then "
                  "flatten, or x.view(-1, 10)")
    for mode, n in (("eval", 1), ("train", 2)):
        model.train(mode == "train")
        try:
            with torch.set_grad_enabled(mode == "train"):
                out = model(torch.zeros(n, 1, 28, 28))
                if mode == "train" and isinstance(out, torch.Tensor):
                    out.float().sum().backward()
        except Exception as err:
            where = ("fails on a (1, 1, 28, 28) input" if mode == "eval" else
                     "fails in training mode on a batch of 2 (forward and backward)")
            raise ModelRefused(f"{name} {where}: {type(err).__name__}: {err}") from err
        if not isinstance(out, torch.Tensor):
            raise ModelRefused(f"{name} gives a {type(out).__name__}, not a tensor of shape (n, 10): {shape_hint}")
        if tuple(out.shape) != (n, 10):
            raise ModelRefused(f"{name} gives outputs of shape {tuple(out.shape)} for a ({n}, 1, 28, 28) input, not "
                               f"(n, 10) = ({n}, 10): {shape_hint}")
    model.zero_grad(set_to_none=True)
    return model.train()


# ------------------------------------------------------------------ recipe, seeds
def load_recipe(recipe: str | dict) -> tuple[str, dict]:
    """(label, overrides of training.HYPERPARAMETERS): a model's recipe by name ('Model_3': step 3's), a JSON
    file of overrides, or a dict. Unknown or bad values are refused by check_hyperparameters."""
    if isinstance(recipe, dict):
        return "given", dict(recipe)
    if recipe in RECIPES:
        return recipe, dict(RECIPES[recipe])
    path = Path(recipe)
    if not path.is_file():
        raise ValueError(f"recipe={recipe!r} is neither a model's recipe ({', '.join(RECIPES)}) nor a JSON file")
    try:
        overrides = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"recipe {path}: not JSON ({err})") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"recipe {path}: a JSON object of hyperparameters is needed, e.g. {{\"lr\": 0.05}}")
    return str(path), overrides


def seeds_report(record: dict) -> list[str]:
    """Each seed's last-5 test accuracies, min and mean, held or not; the hold rate; the mean of the last-5 means
    ± its standard error."""
    runs = record["runs"]
    lines = [f"{'seed':>4}  last {LAST} test accuracies (%)          min     mean   held ≥ {TARGET}"]
    for run in runs:
        s = run_summary(run)
        lines.append(f"{s['seed']:>4}  {' '.join(f'{a:6.2f}' for a in s['last5']):<36}{s['last5_min']:6.2f}  "
                     f"{s['last5_mean']:7.3f}   {'yes' if s['last5_min'] >= TARGET else 'NO'}")
    if runs:
        held, n = held_count(record)
        mean, se, sd = last5_spread(runs)
        spread = f"± {se:.3f} (standard error; std over seeds {sd:.3f})" if n > 1 else "(one seed: no spread)"
        lines += [f"hold rate: {held} of {n} seeds ({100 * held / n:.0f} %)",
                  f"mean of the last-{LAST} means: {mean:.3f} % {spread}"]
    return lines


# ------------------------------------------------------------------ the check
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
    params = count_parameters(probe_model)

    cell = not isinstance(model, str) and Path(spec.rpartition(":")[0]) == record_path.with_suffix(".py").resolve()
    print(f"model: {cls.__name__} (a notebook cell, saved beside the record as {record_path.with_suffix('.py').name})"
          if cell else f"model: {spec}")
    print(f"parameters: {params:,} trainable " + (f"(fewer than {PARAMS_LIMIT:,}: within the assignment's limit)"
          if params < PARAMS_LIMIT else f"(NOT fewer than {PARAMS_LIMIT:,}: over the assignment's limit; the check "
                                        "still trains it, and its verdict fails this rule)"))
    try:
        rows, rf = receptive_field(probe_model)
        refusal = None
        print(f"receptive field at the output: {rf} px (layer by layer, in input pixels)\n{format_receptive_field(rows)}")
    except ReceptiveFieldError as err:
        rows, rf, refusal = [], None, str(err)
        print(f"receptive field: not computed, the tool refused: {refusal}")
    print(f"recipe: {label}, {hp['epochs']} epoch{'s' * (hp['epochs'] != 1)}{' (smoke: a tiny run)' if smoke else ''}; "
          f"what it changes from the defaults (training.HYPERPARAMETERS; the record keeps the whole recipe): "
          f"{recipe_changes(hp)}")
    print(f"seeds: {seed_list(seeds)}")

    pooled = dev.type == "cpu" and not in_process
    make = functools.partial(make_class, spec)  # in every case: here and in each seed's process, the same file's class
    asked = [Run(f"seed-{s}", make, hp, s, f"seed {s}") for s in seeds]
    sha = model_source_sha256(cls)
    resume = resumed_from(record_path)
    previous = load_record(resume) if resume.is_file() else dict(kind="check", runs=[])
    if previous.get("kind") != "check":
        raise ValueError(f"{shown(record_path)} is not a check's record, and is left as it is: choose another name "
                         "(--name) or folder (--dir)")
    on_disk = [(shown(resume), r) for r in previous["runs"]]
    threads = 1 if pooled else torch.get_num_threads()  # as train_seeds runs them
    kept = {run.seed: match[1] for run in asked if (match := reusable(run, on_disk, dev, threads))}
    dropped = [r["seed"] for _, r in on_disk if r["seed"] not in kept]
    if dropped:
        print(f"{shown(resume)} held runs of {seeds_phrase(dropped)} made by other code, recipe or condition, "
              "or of seeds not asked now: they are replaced")
    record = dict(name=record_path.stem, kind="check", model=cls.__name__, model_spec=spec_as_recorded(spec, record_path),
                  model_source_sha256=sha, params=params, params_limit=PARAMS_LIMIT, receptive_field=rf,
                  receptive_field_rows=rows, receptive_field_refusal=refusal, recipe=label, hyperparameters=hp,
                  seeds=seeds, test_images=None, runs=[], verdict=[], passes=False)
    if data is None:
        data = load_mnist(device=dev)
    record["test_images"] = len(data["x_test"][:hp["test_subset"]])
    if kept:
        print(f"on disk in {shown(resume)}: {seeds_phrase(list(kept))}, by the same code, recipe and "
              "condition: kept, not retrained")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="exit status: 0 every rule passed, 1 a rule failed, 2 refused or bad arguments")
    parser.add_argument("model", help="path/to/model.py:ClassName or package.module:ClassName")
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help=f"e.g. 1-5, 1,3,5 (default {DEFAULT_SEEDS})")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE,
                        help="a model's recipe by name (default Model_3: step 3's) or a JSON file of hyperparameters")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's, else 15")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    parser.add_argument("--precision", default="auto", choices=["auto", *PRECISIONS],
                        help="auto: bf16 on a CPU with bf16 units, else fp32")
    parser.add_argument("--jobs", type=int, default=0, help="seeds at once on the CPU, one core each; 0: one per core")
    parser.add_argument("--name", help="the record's name (default: <file or module>-<ClassName>)")
    parser.add_argument("--dir", type=Path, default=CHECKS_DIR, help="where the record goes (default results/checks)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (512 images, 1 epoch): does the command work?")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
        record = check_model(args.model, seeds, args.recipe, args.epochs, args.device, args.precision, args.smoke,
                             args.dir / f"{args.name or default_name(args.model)}.json", jobs=args.jobs)
    except ModelRefused as err:
        print(f"refused, nothing trained: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0 if record["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
