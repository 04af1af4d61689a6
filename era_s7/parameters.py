"""The notebooks' parameters cell, checked once at the top of each notebook: a bad value is named, with what is
allowed and how to set it, before it can fail deep inside torch (`-p seed abc` would end in `torch.manual_seed`
with "invalid literal for int()", naming nothing)."""
from __future__ import annotations

import os
from pathlib import Path

from .assignment import MAX_EPOCHS
from .machine import select_device
from .recipes import resolve_precision


class ParameterError(ValueError):
    """A notebook parameter has a value that is not allowed; the message names each one and how to fix it."""


def whole(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def succeeds(check, value) -> bool:
    try:
        check(value)
    except (ValueError, TypeError):
        return False
    return True


# parameter -> (is the value allowed?, what is allowed, an allowed value for the fix)
RULES = {
    "seed": (lambda v: whole(v, 0), "a whole number >= 0", 7),
    "seeds": (lambda v: isinstance(v, list) and v != [] and all(whole(s, 0) for s in v) and len(set(v)) == len(v),
              "a non-empty list of distinct whole numbers >= 0", [1, 2, 3]),
    "epochs": (lambda v: whole(v, 1), f"a whole number >= 1 (the assignment allows at most {MAX_EPOCHS})", MAX_EPOCHS),
    "device": (lambda v: succeeds(select_device, v), "'auto' (cuda, then mps, then cpu), or 'cpu', 'cuda' or 'mps' "
               "where this machine has it", "auto"),
    "smoke": (lambda v: isinstance(v, bool), "True or False", True),
    "precision": (lambda v: succeeds(lambda p: resolve_precision(p, "cpu"), v),
                  "'auto' (bf16 on a CPU with bf16 units, else fp32), 'fp32' or "
                  "'bf16' (bf16 autocast + channels_last)", "auto"),
    "results_dir": (lambda v: v is None or isinstance(v, (str, os.PathLike)) and str(v) != "" and not Path(v).is_file(),
                    "None (the repository's results/) or the path of a folder", "/tmp/results"),
}


def papermill_option(name: str, value) -> str:
    """How papermill sets the value: -p parses numbers, True/False/None and plain text; a list needs YAML (-y)."""
    return f'-y "{name}: {value}"' if isinstance(value, list) else f"-p {name} {value}"


def check_parameters(**parameters) -> None:
    """Check the parameters cell's values (any of seed, seeds, epochs, device, precision, smoke,
    results_dir), once.

    Raises ParameterError naming every value that is not allowed, what is allowed, and how to set it (in the
    parameters cell, or with papermill). epochs above the assignment's MAX_EPOCHS is allowed, for exploration:
    a note says that the run breaks the assignment's rule, as its Result block will."""
    bad = []
    for name, value in parameters.items():
        allowed, what, example = RULES[name]
        if not allowed(value):
            bad.append(f"- {name}={value!r} is not allowed: {name} must be {what}. Fix: set `{name} = {example!r}` "
                       f"in the parameters cell, or pass `{papermill_option(name, example)}` to papermill.")
    if bad:
        raise ParameterError("notebook parameter" + "s" * (len(bad) > 1) + " not allowed:\n" + "\n".join(bad))
    if parameters.get("epochs", 0) > MAX_EPOCHS:
        print(f"note: epochs={parameters['epochs']} is more than the assignment's {MAX_EPOCHS}: fine for exploration, "
              f"but this run breaks the assignment's {MAX_EPOCHS}-epoch rule, and its Result block will say so.")
