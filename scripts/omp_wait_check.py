"""One-off measurement (issue 25, part 4): two notebooks at once on one laptop.

A notebook trains with one thread per core (`machine.set_threads`); a second notebook beside it oversubscribes
the cores, and OpenMP's threads, which spin while they wait (its default, "active" wait policy), take the cores
from the other process's work. This times Model_3's training steps (step 3's recipe, fp32, batch 128) of a
2-thread process alone, and beside a 1-thread process (the second notebook), each with OMP_WAIT_POLICY unset
(OpenMP's default) and PASSIVE (what `import era_s7` now sets: waiting threads sleep). Writes
results/checks/omp-wait-policy.json. Run it on an otherwise idle machine: python scripts/omp_wait_check.py
"""
import json
import os
import subprocess
import sys
import time

STEP = """
import os, sys, time, torch
from era_s7.model import Model_3
from era_s7.recipes import run_hyperparameters
from era_s7.training import setup, train_epoch
torch.set_num_threads(int(sys.argv[1])); batches = int(sys.argv[2])
hp = run_hyperparameters("Model_3")
torch.manual_seed(0); model = Model_3()
x, y = torch.randn(128 * batches, 1, 28, 28), torch.randint(0, 10, (128 * batches,))
engine = setup(model, x, y, hp, seed=0, step="eager")
train_epoch(engine, x[:384], y[:384])  # warm-up
start = time.perf_counter(); train_epoch(engine, x, y)
print(len(x) / (time.perf_counter() - start))
"""


def images_per_second(threads: int, batches: int, policy: str | None, beside: bool) -> dict:
    """Training images/s of a `threads`-thread process, alone or beside a 1-thread one (started first, running
    longer), with OMP_WAIT_POLICY=`policy` (None: unset) in both."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["ERA_S7_OMP_WAIT_POLICY"] = "keep"  # measure OpenMP's own default when policy is None
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    run = lambda t, b: subprocess.Popen([sys.executable, "-c", STEP, str(t), str(b)], env=env,  # noqa: E731
                                        stdout=subprocess.PIPE, text=True)
    other = run(1, 3 * batches) if beside else None
    if other:
        time.sleep(3)
    main = run(threads, batches)
    rate = float(main.communicate()[0])
    other_rate = float(other.communicate()[0]) if other else None
    return dict(threads=threads, policy=policy or "unset (OpenMP's default: active)", beside_one_thread=beside,
                images_per_s=round(rate), other_images_per_s=other_rate and round(other_rate))


def main() -> int:
    import torch

    from era_s7.machine import arithmetic, device_name
    from era_s7.results import RESULTS_DIR, git_commit, save_json

    rows = [images_per_second(2, 30, policy, beside) for beside in (False, True) for policy in (None, "PASSIVE")]
    for r in rows:
        print(json.dumps(r))
    save_json(dict(name="omp-wait-policy", rows=rows, device_name=device_name(torch.device("cpu")),
                   arithmetic=arithmetic("cpu"), cores=os.cpu_count(), torch=torch.__version__, commit=git_commit()),
              RESULTS_DIR / "checks" / "omp-wait-policy.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
