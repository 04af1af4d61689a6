"""The graphed training step against the same step run eagerly (issue 37), before any graphed run counts.

From one seed, Model_3 with its recipe takes `--steps` steps of batch 64 and then one of 32 (the epoch's short last
batch, 60,000 = 937 x 64 + 32, its own graph) twice: eagerly (`train_step` with `DeviceSGD`, step="device") and as
replayed CUDA graphs (`GraphedSteps`, step="graph"). Both launch the same kernels on the same inputs, cuDNN held to
deterministic algorithms, so they should agree exactly; prints the first step whose loss differs, the largest
relative loss difference over the first 10 steps and the largest weight difference at the end, and fails (exit 1)
if those first 10 losses differ by more than --tolerance (relative; default 1e-5). Why so early: training feeds a
difference back, and one rounding difference grows ~2x a step (on the CPU, eager torch SGD against DeviceSGD: 1.5e-8
after 2 steps, 2e-2 after 20; docs/research-log.md), so later steps cannot tell rounding from a bug, while a wrong
draw, schedule row or stale buffer changes the loss by far more than 1e-5 within the first steps. Also runs the
eager step under CUDA's sync debug mode: a host read in the step (seen or not by Python) fails it. Then times a step
of each: eager torch SGD (today's), eager DeviceSGD, graph.
--device cpu (a smoke run of everything but the capture): the graphed side is the eager DeviceSGD step again.
Writes --out (JSON) with every number."""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import torch

from era_s7 import machine, training
from era_s7.data import load_mnist
from era_s7.model import make_model
from era_s7.recipes import run_hyperparameters


def build(step: str, data: dict, seed: int = 1):
    """Model_3 and its recipe (fp32) set up on the training set by `training.setup` with `step`, as a dict of the
    pieces this script steps by hand."""
    x, y = data["x_train"], data["y_train"]
    engine = training.setup(make_model("Model_3", seed=seed, device=x.device), x, y, run_hyperparameters("Model_3"),
                            seed, step)
    return dict(hp=engine.hp, x=x, y=y, model=engine.model, opt=engine.opt, ema=engine.ema, gen=engine.generator,
                graphed=engine.graphed)


def losses(run: dict, batches: list[int]) -> list[float]:
    """Per-step losses over the batches (sizes) of one shuffled order; the step's sums read after each step."""
    order = torch.randperm(len(run["x"]), generator=run["gen"], device=run["x"].device)
    out, i = [], 0
    for n in batches:
        idx = order[i:i + n]
        i += n
        if run["graphed"] is not None:
            loss_sum = run["graphed"].run_epoch(idx)[0]
        else:
            sums = (torch.zeros((), device=idx.device), torch.zeros((), device=idx.device, dtype=torch.long))
            training.train_step(run["model"], run["x"], run["y"], idx, run["hp"], run["gen"], run["opt"], sums,
                                [run["ema"]])
            loss_sum = sums[0]
        out.append(loss_sum.item() / n)
    return out


def ms_per_step(run: dict, n_steps: int, device: torch.device) -> float:
    order = torch.randperm(len(run["x"]), generator=run["gen"], device=device)[:64 * n_steps]
    def epoch():
        if run["graphed"] is not None:
            return run["graphed"].run_epoch(order)
        sums = (torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))
        for i in range(0, len(order), 64):
            training.train_step(run["model"], run["x"], run["y"], order[i:i + 64], run["hp"], run["gen"], run["opt"],
                                sums, [run["ema"]])
        return sums
    epoch()  # warm-up (and capture)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    epoch()[0].item()
    return (time.perf_counter() - start) / n_steps * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--time-steps", type=int, default=300, help="steps timed per variant (0: none)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    data = load_mnist(device=device)
    batches = [64] * args.steps + [32]
    graph_step = "graph" if device.type == "cuda" else "device"
    runs = {name: build(step, data) for name, step in (("eager", "device"), ("graph", graph_step))}
    found = {name: losses(run, batches) for name, run in runs.items()}
    a, b = found["eager"], found["graph"]
    first = next((k + 1 for k, (p, q) in enumerate(zip(a, b)) if p != q), None)
    early = max(abs(p - q) / abs(p) for p, q in zip(a[:10], b[:10]))
    weights = max((p - q).abs().max().item() for p, q in zip(runs["eager"]["model"].state_dict().values(),
                                                             runs["graph"]["model"].state_dict().values())
                  if p.is_floating_point())
    result = dict(device=machine.select_device(args.device).type, torch=torch.__version__, steps=len(batches),
                  graphed=graph_step, first_step_differing=first, first10_max_rel_loss_diff=early,
                  max_abs_weight_diff=weights, final_losses=[a[-1], b[-1]], tolerance=args.tolerance)
    if device.type == "cuda":
        run = build("device", data)
        losses(run, [64] * 3)  # lazy initialisation and cuDNN's first calls may sync; the steps after may not
        order = torch.randperm(len(run["x"]), device=device)  # the epoch's shuffle, outside the step
        sums = (torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for i in range(0, 64 * 20, 64):
                    training.train_step(run["model"], run["x"], run["y"], order[i:i + 64], run["hp"], run["gen"],
                                        run["opt"], sums, [run["ema"]])
            finally:
                torch.cuda.set_sync_debug_mode("default")
        result["syncs_in_20_device_steps"] = [str(w.message)[:200] for w in caught if "synchron" in str(w.message)]
    if args.time_steps:
        result["ms_per_step"] = {name: ms_per_step(build(step, data), args.time_steps, device)
                                 for name, step in (("eager torch SGD", "eager"), ("eager DeviceSGD", "device"),
                                                    ("graph", graph_step))}
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    bad = []
    if early > args.tolerance:
        bad.append(f"the first 10 steps' losses differ by up to {early:.2e} (relative), over {args.tolerance:.0e}")
    if result.get("syncs_in_20_device_steps"):
        bad.append(f"the device step synchronised: {result['syncs_in_20_device_steps'][:3]}")
    if bad:
        print("GRAPH CHECK FAILED: " + "; ".join(bad), file=sys.stderr)
        return 1
    print(f"graph check passed: first 10 losses within {args.tolerance:.0e}; first differing step: {first}; "
          f"max weight difference after {len(batches)} steps {weights:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
