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

The check itself is `era_s7.learner.check_model`, which the notebook your_model calls too; this module is its
command line. The record goes to results/checks/<name>.json, rewritten after every seed: an interrupted check
resumes, and the seeds already done by the same code, recipe and condition are not retrained.

    python -m era_s7.tools.check my_model.py:Net                      # seeds 1-5, step 3's recipe, 15 epochs
    python -m era_s7.tools.check mypackage.models:Net --seeds 1-8 --recipe my_recipe.json
    make check-model CLASS=my_model.py:Net
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..assignment import parse_seeds
from ..learner import CHECKS_DIR, DEFAULT_RECIPE, DEFAULT_SEEDS, check_model, default_name
from ..loader import ModelRefused
from ..recipes import PRECISIONS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="exit status: 0 every rule passed, 1 a rule failed, 2 refused or bad "
                                            "arguments")
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
