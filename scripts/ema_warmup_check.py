"""One-off measurement (issue 18, part 3): does the EMA warm-up change step 3's last-5 accuracy?

Each seed trains Model_3 once with step 3's recipe on the validation split and carries two weight averages
side by side: the fixed decay 0.998 (as before) and the same decay with the warm-up (training.ema_decay).
Both follow the very same trajectory, so their per-epoch accuracies are paired exactly. Writes
results/checks/ema-warmup.json. Usage: python scripts/ema_warmup_check.py SEEDS [--precision bf16]
"""
import argparse
import statistics
import sys
import time

import torch

from era_s7.assignment import paired_difference, parse_seeds
from era_s7.data import load_mnist
from era_s7.machine import device_name
from era_s7.model import make_model
from era_s7.recipes import PRECISIONS, run_hyperparameters
from era_s7.results import RESULTS_DIR, git_commit, save_json
from era_s7.tools.sweep import split_data
from era_s7.training import evaluate, setup, train_epoch


def run(seed: int, data: dict, hp: dict) -> dict:
    engine = setup(make_model("Model_3", seed=seed), data["x_train"], data["y_train"], hp, seed, step="eager")
    warm = engine.ema  # the recipe's EMA, with the warm-up; beside it, on purpose, the fixed decay without one
    fixed = torch.optim.swa_utils.AveragedModel(
        engine.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(hp["ema"]), use_buffers=True)
    engine.averages.append(fixed)
    rows = []
    for epoch in range(1, hp["epochs"] + 1):
        train_epoch(engine, data["x_train"], data["y_train"])
        accs = [evaluate(m, data["x_test"], data["y_test"], hp["eval_batch_size"], hp["bf16"])[1]
                for m in (fixed, warm)]
        rows.append(dict(epoch=epoch, fixed=accs[0], warmup=accs[1]))
        print(f"seed {seed} epoch {epoch:>2}: fixed decay {accs[0]:.2f}%  with warm-up {accs[1]:.2f}%", flush=True)
    return dict(seed=seed, history=rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("seeds")
    parser.add_argument("--precision", default="bf16", choices=sorted(PRECISIONS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    hp = run_hyperparameters("Model_3", precision=args.precision)
    data = split_data(load_mnist(), "validation")
    start = time.perf_counter()
    runs = [run(s, data, hp) for s in parse_seeds(args.seeds)]
    last5 = {k: {r["seed"]: statistics.mean(h[k] for h in r["history"][-5:]) for r in runs}
             for k in ("fixed", "warmup")}
    diff, se, n = paired_difference(last5["warmup"], last5["fixed"])
    summary = dict(name="ema-warmup", model="Model_3", split="validation", precision=args.precision, threads=1,
                   device_name=device_name(torch.device("cpu")), torch=torch.__version__, commit=git_commit(),
                   hyperparameters=hp, runs=runs, last5_mean=last5, warmup_minus_fixed=dict(mean=diff, se=se, seeds=n),
                   total_seconds=time.perf_counter() - start)
    save_json(summary, RESULTS_DIR / "checks" / "ema-warmup.json")
    print(f"last-5 mean, warm-up minus fixed decay: {diff:+.3f} ± {se:.3f} (SE, {n} paired seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
