"""Classify photos or scans of digits: python -m era_s7.tools.predict IMAGE... [--model Model_3] \
[--weights results/step3.pt]

Each image goes through the MNIST-style preprocessing of era_s7/digits.py; one line per image:
    <file>  <digit>  p=<probability>  runner-up <digit> p=<probability>
An image that cannot be read (not an image, a decompression bomb, a bad array), or that has no ink, gets one line
`error: <file>: <reason>` on stderr and the other images are still classified; the exit status is then 1."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..digits import classify
from ..model import MODELS, make_model
from ..results import RESULTS_DIR, load_weights

# Each step's model and the weights its notebook commits.
STEP_WEIGHTS = {"Model_1": "step1.pt", "Model_2": "step2.pt", "Model_3": "step3.pt"}


def load_model(name: str = "Model_3", weights: Path | str | None = None):
    """`name` from era_s7/model.py with `weights` (default: that step's results/step<N>.pt), in eval mode.
    Raises ValueError saying why the weights do not load and what to do."""
    if weights is None:
        if name not in STEP_WEIGHTS:
            raise ValueError(f"no committed weights for {name}: give --weights")
        return load_weights(make_model(name), RESULTS_DIR / STEP_WEIGHTS[name]).eval()
    return load_weights(make_model(name), weights, fix=(
        f"--weights takes a state_dict of {name} (saved with torch.save(model.state_dict(), path)); "
        f"for another of this project's models, say which with --model ({', '.join(sorted(MODELS))})")).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m era_s7.tools.predict", description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG, ...: any size, light or dark paper")
    parser.add_argument("--model", default="Model_3", choices=sorted(MODELS))
    parser.add_argument("--weights", help="a state_dict .pt (default: the model's step in results/)")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model, args.weights)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = 0
    for image in args.images:
        try:
            print(classify(image, model), flush=True)
        except Exception as err:  # unreadable, not an image, no ink, or a decoder's own error: the next file is read
            reason = str(err) if isinstance(err, (OSError, ValueError)) else f"{type(err).__name__}: {err}"
            reason = " ".join(reason.split())  # one line
            print(f"error: {reason}" if reason.startswith(image) else f"error: {image}: {reason}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
