"""The model's summary: torchsummary's table on the model's own device (torchsummary defaults to cuda), with the
model's own count of parameters as its totals, each parameter once (`count_parameters`: the trainable ones)."""
from __future__ import annotations

import contextlib
import io

from torch import nn


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def summary(model: nn.Module, input_size=(1, 28, 28)) -> str:
    """torchsummary.summary on the model's own device (torchsummary defaults to cuda); returns the text.

    input_size is one sample's shape without the batch dimension: (C, H, W) for an image model, e.g. (1, 28, 28);
    (features,) for a model that starts with a Linear layer. The totals are the model's own count, each parameter
    once: where torchsummary's sum of the table differs (a module called more than once, weight sharing, is in
    the table at each call; parameters not named weight or bias are not), a note below the totals says by how
    much and why. Raises ValueError for an input_size that is not a tuple of positive ints, for a model without
    parameters, and for one that does not run on a batch of input_size (the cause in the message)."""
    from torchsummary import summary as torch_summary

    size = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    name = type(model).__name__
    if not size or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"input_size={input_size!r}: give one sample's shape as a tuple of positive ints, without "
                         "the batch dimension: (C, H, W) for an image model, e.g. (1, 28, 28)")
    params = list(model.parameters())
    if not params:
        raise ValueError(f"{name} has no parameters: there is nothing to count (torchsummary needs a parameter to "
                         "find the model's device)")
    # torchsummary hooks every module but the one it is given: a model that is one layer goes in a container
    hooked = model if any(model.children()) else nn.Sequential(model)
    calls: dict[nn.Module, int] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: calls.__setitem__(m, calls.get(m, 0) + 1))
             for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            torch_summary(hooked, size, device=params[0].device.type)
    except Exception as err:
        hint = (f"; input_size is one sample's shape without the batch dimension: try {size[1:]}"
                if len(size) >= 4 and size[0] == 1 else
                "; input_size is one sample's shape without the batch dimension, (C, H, W) for an image model")
        raise ValueError(f"{name} does not run on a batch of input_size {size} (torchsummary feeds 2 samples, "
                         f"shape {(2, *size)}): {type(err).__name__}: {err}{hint}") from err
    finally:
        for hook in hooks:
            hook.remove()
    return with_true_totals(out.getvalue(), model, calls)


def with_true_totals(text: str, model: nn.Module, calls: dict) -> str:
    """torchsummary's text with its totals replaced by the model's own count, and a note where they differed."""
    total = sum(p.numel() for p in model.parameters())
    trainable = count_parameters(model)
    lines = text.splitlines()
    said = int(next(line for line in lines if line.startswith("Total params:")).split(":")[1].replace(",", ""))
    if said == total:
        return text
    paths = {m: path or "the model itself" for path, m in model.named_modules()}
    shared = [f"'{paths[m]}' ({type(m).__name__}, {sum(p.numel() for p in m.parameters(recurse=False)):,} "
              f"parameters) called {n} times" for m, n in calls.items() if n > 1]
    why = (f"the table lists a shared module at each call (weight sharing: {'; '.join(shared)})" if shared else
           "torchsummary counts only the .weight and .bias of each module")
    size_mb = total * 4 / 1024 ** 2
    new = {"Total params": f"{total:,}", "Trainable params": f"{trainable:,}",
           "Non-trainable params": f"{total - trainable:,}", "Params size (MB)": f"{size_mb:.2f}"}
    fixed = []
    for line in lines:
        key = line.split(":")[0]
        if key in new:
            line = f"{key}: {new[key]}"
        elif key == "Estimated Total Size (MB)":
            parts = [float(l.split(":")[1]) for l in lines if l.split(":")[0] in ("Input size (MB)",
                                                                                 "Forward/backward pass size (MB)")]
            line = f"{key}: {sum(parts) + size_mb:.2f}"
        fixed.append(line)
        if key == "Non-trainable params":
            fixed.append(f"Note: the model's own count, each parameter once; the table's rows add up to {said:,} "
                         f"because {why}.")
    return "\n".join(fixed) + "\n"
