"""Receptive field, computed from the modules themselves, and a CPU-safe torchsummary."""
from __future__ import annotations

import contextlib
import io
import math

import torch
from torch import nn

SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _first(v):
    return v[0] if isinstance(v, tuple) else v


def kernel_stride_padding(module: nn.Module, size_in: int, size_out: int) -> tuple[int, int, int]:
    """(effective kernel, stride, padding) of one spatial layer along one axis."""
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        stride = math.ceil(size_in / size_out)  # GAP: one window over the whole map
        return stride if size_out > 1 else size_in, stride, 0
    k, s, p = _first(module.kernel_size), _first(module.stride or module.kernel_size), _first(module.padding)
    d = _first(getattr(module, "dilation", 1))
    return d * (k - 1) + 1, s, p


def receptive_field(model: nn.Module, input_size=(1, 28, 28)) -> tuple[list[dict], int]:
    """Per-layer table and final receptive field of `model`, one dummy forward pass in execution order.

    Each row: layer (module path), type, kernel, stride, padding, in and out size, jump (distance in input
    pixels between neighbouring outputs) and rf. rf_out = rf_in + (kernel - 1) * jump_in; jump_out = jump_in * stride."""
    calls = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append((m, i[0].shape[-1], o.shape[-1])))
             for m in model.modules() if isinstance(m, SPATIAL)]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    rows, rf, jump = [], 1, 1
    for module, size_in, size_out in calls:
        k, s, p = kernel_stride_padding(module, size_in, size_out)
        rf, jump_in = rf + (k - 1) * jump, jump
        jump *= s
        rows.append(dict(layer=names[module], type=type(module).__name__, kernel=k, stride=s, padding=p,
                         size_in=size_in, size_out=size_out, jump_in=jump_in, rf=rf))
    return rows, rf


def format_receptive_field(rows: list[dict]) -> str:
    """The table as aligned plain text (reads the same in a notebook, a log and a test)."""
    header = f"{'layer':<16}{'type':<18}{'k':>3}{'s':>3}{'p':>3}{'in':>5}{'out':>5}{'jump':>6}{'RF':>5}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['layer']:<16}{r['type']:<18}{r['kernel']:>3}{r['stride']:>3}{r['padding']:>3}"
                     f"{r['size_in']:>5}{r['size_out']:>5}{r['jump_in']:>6}{r['rf']:>5}")
    return "\n".join(lines)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def summary(model: nn.Module, input_size=(1, 28, 28)) -> str:
    """torchsummary.summary on the model's own device (torchsummary defaults to cuda); returns the text."""
    from torchsummary import summary as torch_summary

    device = next(model.parameters()).device
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        torch_summary(model, input_size, device=device.type)
    return out.getvalue()
