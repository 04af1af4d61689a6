"""The runner's reuse rule (runs.same_run, runs.reusable): a record stands in for a run only when its code, recipe,
seed, condition and torch are the run's."""
import torch

from era_s7 import machine, recipes, runs
from era_s7.model import Model_1
from era_s7.results import model_source_sha256


def recorded(run: runs.Run, **changes) -> dict:
    """The record a one-thread CPU run of `run` made here would carry (what same_run reads), with `changes`."""
    return {**dict(name=run.name, seed=run.seed, hyperparameters=run.hp, torch=torch.__version__,
                   model_source_sha256=model_source_sha256(Model_1), **machine.condition_of("cpu", 1, run.hp)),
            **changes}


def test_a_record_stands_in_only_for_its_own_code_recipe_seed_condition_and_torch():
    hp = recipes.run_hyperparameters("Model_1")
    run = runs.Run("a", Model_1, hp, 3, "a")
    assert runs.reusable(run, [("here", recorded(run))], "cpu", 1)[0] == "here"
    for other in (dict(seed=4), dict(torch="0.0.0+another"), dict(threads=2), dict(model_source_sha256="0" * 64),
                  dict(hyperparameters={**hp, "lr": 0.03}), dict(device_name="another CPU")):
        assert runs.reusable(run, [("there", recorded(run, **other))], "cpu", 1) is None, other
    # a record made before a hyperparameter existed ran with its default: it still stands in
    older = {k: v for k, v in hp.items() if k not in ("lookahead", "bn_bias_lr", "anneal_end", "lr_floor")}
    assert runs.reusable(run, [("older", recorded(run, hyperparameters=older))], "cpu", 1) is not None
