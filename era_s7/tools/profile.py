"""`make profile`: where one training step of a named model and recipe goes, in ms and in % of the step, by module
(forward and backward of each layer), by phase (augmentation, optimizer, EMA) and by op (torch.profiler's self
times), on the engine's own step (`training.train_step`, set up by `training.setup`) over real MNIST batches. Writes
results/profile-<model>-<precision>.json with the condition it was measured under (processor, arithmetic, threads,
precision, memory format). A measurement, not a test: it asserts nothing about speed.
    python -m era_s7.tools.profile --model Model_3 --precision bf16 --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from contextlib import contextmanager

import torch
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

from .. import machine, training
from ..data import load_mnist
from ..machine import condition_of
from ..recipes import PRECISIONS, RECIPES, run_hyperparameters
from ..results import RESULTS_DIR, git_commit, save_json
from .bench import build


@contextmanager
def labelled(model: torch.nn.Module):
    """Every leaf module's forward and backward as profiler ranges "forward <name>" / "backward <name>" (forward
    hooks, and full backward hooks, which add an identity to the graph but change no number)."""
    handles, open_ranges = [], defaultdict(list)

    def enter(label):
        def hook(module, *args):
            r = record_function(label)
            r.__enter__()
            open_ranges[label].append(r)
        return hook

    def leave(label):
        def hook(module, *args):
            if open_ranges[label]:
                open_ranges[label].pop().__exit__(None, None, None)
        return hook

    for name, module in model.named_modules():
        if list(module.children()) or not name:
            continue
        kind = type(module).__name__
        handles += [module.register_forward_pre_hook(enter(f"forward {name} ({kind})")),
                    module.register_forward_hook(leave(f"forward {name} ({kind})")),
                    module.register_full_backward_pre_hook(enter(f"backward {name} ({kind})")),
                    module.register_full_backward_hook(leave(f"backward {name} ({kind})"))]
    try:
        with warnings.catch_warnings():  # the first conv's input needs no gradient: its hook fires on the output's
            warnings.filterwarnings("ignore", "Full backward hook is firing")
            yield
    finally:
        for h in handles:
            h.remove()


class Ranged:
    """An object's method called inside a profiler range (the optimizer's step, the EMA's update)."""

    def __init__(self, obj, method: str, label: str):
        self.obj, self.method, self.label = obj, method, label

    def __getattr__(self, name):
        attr = getattr(self.obj, name)
        if name != self.method:
            return attr

        def ranged(*args, **kwargs):
            with record_function(self.label):
                return attr(*args, **kwargs)
        return ranged


def timed_and_profiled(name: str, hp: dict, device: torch.device, steps: int, warmup: int):
    """(the model, wall ms per step, the profiler's events): the model `name` (bench.build) set up with `hp` on MNIST
    (`training.setup`, the eager step), its optimizer step and EMA update each in a profiler range; `warmup` steps,
    then `steps` timed without the profiler, then `steps` profiled."""
    data = load_mnist(device=device)
    x, y = data["x_train"], data["y_train"]
    engine = training.setup(build(name, device).train(), x, y, hp, seed=0, step="eager")
    opt = Ranged(engine.opt, "step", "optimizer step and schedule")
    averages = [Ranged(a, "update_parameters", "EMA update") for a in engine.averages[:1]]  # the recipe's EMA
    order = torch.randperm(len(x), generator=engine.generator, device=device)
    bs = hp["batch_size"]
    sums = (torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    augment = training.augment

    def step(k: int) -> None:
        with record_function("train step"):
            training.train_step(engine.model, x, y, order[k * bs:(k + 1) * bs], hp, engine.generator, opt, sums,
                                averages)

    def ranged_augment(*args, **kwargs):
        with record_function("augmentation"):
            return augment(*args, **kwargs)

    for k in range(warmup):
        step(k)
    sync()
    start = time.perf_counter()
    for k in range(warmup, warmup + steps):
        step(k)
    sync()
    wall = (time.perf_counter() - start) / steps * 1e3
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    training.augment = ranged_augment  # the engine's step calls the loop module's augment: ranged while profiled
    try:
        with labelled(engine.model), profile(activities=activities) as prof:
            for k in range(warmup + steps, warmup + 2 * steps):
                step(k)
            sync()
    finally:
        training.augment = augment
    return engine.model, wall, prof.key_averages()


def profile_step(name: str, recipe: str, precision: str, device: torch.device, steps: int = 20,
                 warmup: int = 10) -> dict:
    """The record: the model `name` (bench.build) trained by RECIPES[recipe] at `precision`, `warmup` steps, then
    `steps` timed without the profiler (wall ms/step), then `steps` profiled (`timed_and_profiled`)."""
    hp = run_hyperparameters(recipe, precision=precision)
    bs = hp["batch_size"]
    model, wall, events = timed_and_profiled(name, hp, device, steps, warmup)
    by_key = {e.key: e for e in events}
    step_ms = by_key["train step"].cpu_time_total / 1e3 / steps
    ms = lambda key: by_key[key].cpu_time_total / 1e3 / steps if key in by_key else 0.0  # noqa: E731
    pct = lambda v: 100.0 * v / step_ms  # noqa: E731
    modules = []
    for mod_name, module in model.named_modules():
        if list(module.children()) or not mod_name:
            continue
        label = f"{mod_name} ({type(module).__name__})"
        fwd, bwd = ms(f"forward {label}"), ms(f"backward {label}")
        modules.append(dict(module=mod_name, type=type(module).__name__, forward_ms=fwd, backward_ms=bwd,
                            ms=fwd + bwd, percent=pct(fwd + bwd)))
    phases = {p: ms(p) for p in ("augmentation", "optimizer step and schedule", "EMA update")}
    phases["forward (all modules)"] = sum(m["forward_ms"] for m in modules)
    phases["backward (all modules)"] = sum(m["backward_ms"] for m in modules)
    phases["the rest (loss, gradients' zeroing, accumulation, hooks)"] = step_ms - sum(phases.values())
    ops = sorted((e for e in events if not e.key.startswith(("forward ", "backward ", "train step", "augmentation",
                                                               "optimizer step", "EMA update", "ProfilerStep"))),
                 key=lambda e: -e.self_cpu_time_total)
    ops = [dict(op=e.key, self_ms=e.self_cpu_time_total / 1e3 / steps, percent=pct(e.self_cpu_time_total / 1e3 / steps),
                calls_per_step=e.count / steps) for e in ops if e.self_cpu_time_total > 0][:40]
    threads = torch.get_num_threads()
    return dict(model=name, recipe=recipe, **condition_of(device, threads, hp), device=device.type,
                torch=torch.__version__, commit=git_commit(), batch_size=bs, steps_profiled=steps, warmup_steps=warmup,
                step_ms_wall=wall, step_ms_profiled=step_ms, images_per_s_wall=bs / wall * 1e3,
                phases=[dict(phase=k, ms=v, percent=pct(v)) for k, v in phases.items()],
                modules=sorted(modules, key=lambda m: -m["ms"]), ops=ops,
                note="ms per step; module and phase times include their ops (inclusive), op times are self times; "
                     "percent of the profiled step (the profiler and its hooks add their own time to it)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Model_3", help="a class of era_s7.model or a sweep candidate")
    parser.add_argument("--recipe", default=None, help="a key of model.RECIPES (default: the model's, else Model_3's)")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per usable core)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", default=None, help="default: results/profile-<model>-<precision>.json")
    args = parser.parse_args(argv)
    recipe = args.recipe or (args.model if args.model in RECIPES else "Model_3")
    if recipe not in RECIPES:
        parser.error(f"--recipe {recipe!r} is not known; allowed: {', '.join(RECIPES)}")
    device = machine.select_device(args.device)
    if device.type == "cpu":
        machine.set_threads(args.threads)
    record = profile_step(args.model, recipe, args.precision, device, args.steps, args.warmup)
    path = save_json(record, args.out or RESULTS_DIR / f"profile-{args.model}-{args.precision}.json")
    print(f"{args.model}, recipe {recipe}, {args.precision} on {record['device_name']} ({record['arithmetic']}), "
          f"{record['threads']} thread(s): {record['step_ms_wall']:.2f} ms a step of {record['batch_size']} "
          f"({record['images_per_s_wall']:,.0f} images/s); profiled {record['step_ms_profiled']:.2f} ms")
    for title, rows, key in (("phase", record["phases"], "phase"), ("module", record["modules"][:12], "module"),
                             ("op (self)", record["ops"][:15], "op")):
        print(f"\n{'by ' + title:<58}{'ms':>8}{'%':>7}")
        for r in rows:
            label = f"{r[key]} ({r['type']})" if key == "module" else r[key]
            print(f"{label[:57]:<58}{r.get('ms', r.get('self_ms')):8.2f}{r['percent']:7.1f}")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
