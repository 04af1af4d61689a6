"""Every training recipe, whole, in this one file: the defaults (HYPERPARAMETERS), each step's changes to them
(RECIPES, for Model_1 to Model_4), the precisions' switches (PRECISIONS) and the smoke run's (SMOKE), and the one
function that resolves a run's whole recipe from them (`run_hyperparameters`), which the notebooks, the commands
(check, sweep, bench, profile) and the scripts all call. A record keeps the whole resolved dict.

Step 3's recipe, for instance, is HYPERPARAMETERS with RECIPES["Model_3"]'s twelve keys written over it:
`run_hyperparameters("Model_3")` is that dict, checked.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .machine import native_bf16

# One explicit dict: every run records the values it used (results/<name>.json).
HYPERPARAMETERS = dict(
    epochs=15,
    batch_size=128,
    optimizer="sgd",        # "sgd" (Nesterov momentum), "adam", or "muon" (Muon on the conv matrices, SGD on the rest)
    lr=0.1,                 # peak learning rate of the schedule
    momentum=0.9,
    bn_bias_lr=1.0,         # learning-rate multiplier of BatchNorm's shifts (biases), on the same schedule (1: off)
    lookahead=0,            # Lookahead (Zhang et al., 2019): every k steps the weights move halfway to a slow copy
                            # (k; 0: off; pytorch-optimizer's `Lookahead`, alpha 0.5)
    muon_lr=0.02,           # muon: peak learning rate of the Muon part, on the same schedule (Jordan et al.'s 0.02)
    weight_decay=5e-4,
    schedule="onecycle",    # "onecycle", "step" or "constant"; never reads test metrics
    pct_start=0.2,          # onecycle: fraction of steps spent warming up
    anneal_end=1.0,         # onecycle: fraction of the run at whose end the anneal reaches its floor, then held
                            # (1.0: the run's end, torch's OneCycleLR as it is)
    lr_floor=0.0,           # onecycle: the anneal's final lr as a fraction of the peak (0: OneCycleLR's own, 1.6e-6)
    step_size=6, gamma=0.1,  # step schedule: multiply lr by gamma every step_size epochs
    rotate_deg=10.0,        # augmentation: uniform rotation in [-rotate_deg, rotate_deg]
    translate=0.1,          # augmentation: uniform shift in [-translate, translate] of the image size
    elastic=0.0,            # augmentation: smooth random displacement of up to `elastic` pixels (0: off)
    label_smoothing=0.0,
    ema=0.0,                # decay of an exponential moving average of the weights (0: off); the EMA is evaluated
    ema_also=0.0,           # a second EMA decay followed beside `ema` and evaluated each epoch (0: off); it never
                            # feeds back, so one run also yields the run with ema=ema_also (`with_ema_also`)
    distill=0.0,            # self-distillation from the weight EMA: weight of the KL term towards the EMA's softened
                            # predictions (0: off; needs `ema`); the labels' loss gets 1 - distill
    distill_after=3,        # epochs trained before the EMA teaches (it must first have forgotten the initial weights)
    distill_temperature=2.0,  # the softmax temperature of both sides of the KL term (Hinton et al., 2015)
    no_decay="",            # parameters without weight decay: "" (none), "batchnorm", "depthwise" or both,
                            # "depthwise+batchnorm" (MobileNet's practice for filters of 9 weights, and BN's)
    bf16=False,             # bf16 autocast; pays where the hardware has bf16 units (research log: measure)
    channels_last=False,    # NHWC memory format for the model and its inputs; pays with bf16 on such CPUs
    eval_batch_size=256,    # evaluation's batch: 3x faster than 2000 on one CPU thread, whose cache 2000 images' maps
                            # overflow (10k test images, Model_3 in bf16: 0.58 s against 1.88 s, AMD EPYC)
    train_subset=None,      # int: train on the first n images (smoke tests)
    test_subset=None,
)

# Each step's recipe: the keys it changes in HYPERPARAMETERS (the rest are the defaults above). A candidate of the
# search keeps its own recipe, frozen once it has runs on record (tools/rounds.py); a step names the one it adopted.
PLAIN_SGD = dict(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=0.0, schedule="constant",
                 rotate_deg=0.0, translate=0.0)
RECIPES = {
    "Model_1": PLAIN_SGD,  # steps 1 and 2: plain SGD at a constant lr, no augmentation, no weight decay
    "Model_2": PLAIN_SGD,
    # step 3: round 6 of the search (docs/search.md) adopted candidate "dsx41-b64-nodecay-ls005" (batch 64, no weight
    # decay on the depthwise filters and BN, label smoothing 0.05; it was 128, decay on every weight, 0.1):
    # rounds.OLD_STEP3_RECIPE keeps the recipe of rounds 1-6
    "Model_3": dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="onecycle", pct_start=0.2,
                    rotate_deg=8.0, translate=0.0, ema=0.998, label_smoothing=0.05, batch_size=64,
                    no_decay="depthwise+batchnorm"),
}
RECIPES["Model_4"] = RECIPES["Model_3"]  # golf changes the model only

# A run's precision -> its hyperparameter overrides. bf16 (autocast + channels_last) trained Model_3 1.5x and the
# depthwise-separable plan 3.4x faster on a 2-core AMD EPYC with avx512_bf16, 2.2x on an Intel Xeon with AMX,
# and slower on an AMD EPYC without bf16 units: 2.5x (research log), 6.1x for step 3's recipe on one thread
# (docs/search.md, round 7). `make bench` measures it on the machine at hand.
PRECISIONS = {"fp32": {}, "bf16": {"bf16": True, "channels_last": True}}
SMOKE = dict(epochs=1, train_subset=512, test_subset=500)  # a tiny run that exercises every cell

OPTIMIZERS = ("sgd", "adam", "muon")
SCHEDULES = ("onecycle", "step", "constant")
NO_DECAY = ("batchnorm", "depthwise")  # what hp["no_decay"] may name, joined by "+"


def run_hyperparameters(recipe: str | Path | dict, epochs: int | None = None, smoke: bool = False,
                        precision: str = "fp32", device: torch.device | str = "cpu") -> dict:
    """A run's whole recipe, resolved in this one place: HYPERPARAMETERS (the defaults), then the recipe's overrides
    (a step's model name, e.g. "Model_3": RECIPES; a JSON file of overrides; or a dict: `load_recipe`), then `epochs`
    (None: the recipe's), then the precision's switches (PRECISIONS; "auto": bf16 on a CPU with bf16 units);
    validated (check_hyperparameters: ValueError naming the bad key); shrunk to a smoke run (SMOKE) when asked."""
    _, overrides = load_recipe(recipe)
    hp = check_hyperparameters({**overrides, **PRECISIONS[resolve_precision(precision, device)],
                                **({"epochs": epochs} if epochs else {})})
    return {**hp, **SMOKE} if smoke else hp


def load_recipe(recipe: str | Path | dict) -> tuple[str, dict]:
    """(label, overrides of HYPERPARAMETERS): a step's recipe by model name ('Model_3': step 3's), a JSON file of
    overrides, or a dict ("given"). ValueError for anything else; bad values are refused by check_hyperparameters."""
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


def recipe_changes(hp: dict) -> dict:
    """The keys of a recipe that differ from HYPERPARAMETERS, in its order: what a run changes (a record keeps the
    whole dict)."""
    return {k: v for k, v in hp.items() if HYPERPARAMETERS.get(k, object()) != v}


def resolve_precision(precision: str, device: torch.device) -> str:
    """A run's precision (a key of PRECISIONS) from a notebook's `precision` parameter: "auto" is bf16 on a CPU
    with native bf16 units (native_bf16), fp32 elsewhere (GPUs included); "fp32" and "bf16" are taken as given.
    ValueError for anything else."""
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cpu" and native_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; allowed: 'auto', {', '.join(map(repr, PRECISIONS))}")
    return precision


def check_hyperparameters(hp: dict) -> dict:
    """The full dict (defaults filled in), or ValueError naming the bad parameter and what is allowed."""
    unknown = set(hp) - set(HYPERPARAMETERS)
    if unknown:
        raise ValueError(f"unknown hyperparameters {sorted(unknown)}; allowed: {sorted(HYPERPARAMETERS)}")
    hp = {**HYPERPARAMETERS, **hp}
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if not isinstance(hp[key], int) or hp[key] <= 0:
            raise ValueError(f"{key}={hp[key]!r} must be a positive integer")
    if not hp["lr"] > 0 or not hp["muon_lr"] > 0:
        raise ValueError(f"lr={hp['lr']!r} and muon_lr={hp['muon_lr']!r} must be > 0")
    if hp["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"optimizer={hp['optimizer']!r}; allowed: {OPTIMIZERS}")
    if hp["schedule"] not in SCHEDULES:
        raise ValueError(f"schedule={hp['schedule']!r}; allowed: {SCHEDULES}")
    if hp["rotate_deg"] < 0 or not 0 <= hp["translate"] < 1 or hp["elastic"] < 0:
        raise ValueError("rotate_deg and elastic must be >= 0 and translate in [0, 1)")
    if not 0 <= hp["ema"] < 1 or not 0 <= hp["ema_also"] < 1:
        raise ValueError(f"ema={hp['ema']!r} and ema_also={hp['ema_also']!r} must be in [0, 1) (0 turns it off)")
    if not 0 < hp["anneal_end"] <= 1 or not 0 <= hp["lr_floor"] < 1:
        raise ValueError(f"anneal_end={hp['anneal_end']!r} must be in (0, 1] and lr_floor={hp['lr_floor']!r} in [0, 1)")
    if (hp["anneal_end"] < 1 or hp["lr_floor"]) and hp["schedule"] != "onecycle":
        raise ValueError("anneal_end and lr_floor shape the one-cycle schedule: set schedule='onecycle'")
    if not hp["bn_bias_lr"] > 0 or not isinstance(hp["lookahead"], int) or hp["lookahead"] < 0:
        raise ValueError(f"bn_bias_lr={hp['bn_bias_lr']!r} must be > 0 and lookahead={hp['lookahead']!r} a whole "
                         "number of steps >= 0 (0: off)")
    if hp["ema_also"] and not hp["ema"]:
        raise ValueError("ema_also is a second EMA beside `ema`: set ema too")
    if not 0 <= hp["distill"] < 1 or (hp["distill"] and not hp["ema"]):
        raise ValueError(f"distill={hp['distill']!r} must be in [0, 1), and needs a weight EMA (ema > 0) to learn from")
    if not hp["distill_temperature"] > 0 or not isinstance(hp["distill_after"], int) or hp["distill_after"] < 0:
        raise ValueError("distill_temperature must be > 0 and distill_after a whole number of epochs >= 0")
    bad = set(filter(None, hp["no_decay"].split("+"))) - set(NO_DECAY)
    if bad:
        raise ValueError(f"no_decay={hp['no_decay']!r}: {sorted(bad)} unknown; allowed: '', {', '.join(NO_DECAY)} "
                         "joined by '+' (e.g. 'depthwise+batchnorm')")
    return hp
