"""optimizers.py and the one setup: `training.setup` is the only caller of make_optimizer and make_ema outside the
tests (device_step.schedule_table's copy aside), and steps per epoch are counted in one place."""
import ast
from pathlib import Path

import torch

from era_s7 import optimizers, recipes, training
from era_s7.model import make_model

ROOT = Path(__file__).resolve().parent.parent
BUILDERS = {"make_optimizer", "make_ema"}
ALLOWED = {("era_s7/training.py", "setup", "make_optimizer"), ("era_s7/training.py", "setup", "make_ema"),
           ("era_s7/device_step.py", "schedule_table", "make_optimizer")}  # the table reads the schedule on a copy


def calls(path: Path):
    """(function, name called) for every call of a BUILDERS name in the file, by the function it sits in."""
    tree = ast.parse(path.read_text())
    for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        for node in ast.walk(func):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in BUILDERS:
                    yield func.name, name


def test_only_setup_builds_an_optimizer_or_an_ema():
    files = [*(ROOT / "era_s7").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
    found = {(str(p.relative_to(ROOT)), f, n) for p in files for f, n in calls(p)}
    assert found == ALLOWED, sorted(found - ALLOWED)


def test_steps_per_epoch_count_the_short_last_batch_once():
    assert training.steps_per_epoch(60_000, 64) == 938 and training.steps_per_epoch(12_800, 128) == 100
    assert training.steps_per_epoch(1, 64) == 1


def test_setup_builds_the_run_s_engine_as_the_recipe_says(mnist):
    hp = recipes.run_hyperparameters({**recipes.RECIPES["Model_3"], "ema_also": 0.99})
    x, y = mnist["x_train"][:1000], mnist["y_train"][:1000]
    eager = training.setup(make_model("Model_3"), x, y, hp, seed=3, step="eager")
    assert eager.steps_per_epoch == 16 and isinstance(eager.opt, optimizers.Scheduled) and eager.graphed is None
    assert eager.averages == [eager.ema, eager.ema_also] and eager.ema.decay == 0.998 and eager.lrs is None
    assert torch.equal(eager.generator.get_state(), torch.Generator().manual_seed(3).get_state())
    device = training.setup(make_model("Model_3"), x, y, hp, seed=3, step="device")
    assert device.lrs.shape == (hp["epochs"] * 16 + 1, len(device.opt.param_groups))
    assert device.lr(0) == eager.lr(0)  # before any step, both read the schedule's first row
