"""Receptive field, computed from the model's dataflow graph (the CPU-safe torchsummary: era_s7/summary.py).

The method is Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019
(https://distill.pub/2019/computing-receptive-fields/). Along one spatial axis, a layer with kernel k (dilation
folded in: d * (k - 1) + 1), stride s and padding p maps the field of its input to that of its output:

    rf_out = rf_in + (k - 1) * jump_in      jump_out = jump_in * s      start_out = start_in - p * jump_in

rf is the width of one output's field and jump the distance between neighbouring outputs' fields, both in input
pixels; start is where output 0's field begins (negative: in the zero padding). Where parallel paths merge (add,
mul, cat along channels), each output sees the union of its paths' fields, from the leftmost start to the
rightmost end (the paper's multi-path networks). Global pooling, and a Linear layer on a flattened map, are one
window over the whole map (k = s = its size): their rf is the extent of the whole input, padding included
(e.g. 32 for a 28 px image reached through two 3x3 convs with padding 1).

The graph is traced with torch.fx, so operations called in `forward` (F.max_pool2d, x.mean((2, 3)), a residual
`+`) count as modules do. An operation whose effect on the field is not known here stops the calculation with a
ReceptiveFieldError that names it: no number is better than a wrong one.
"""
from __future__ import annotations

import contextlib
import io
import operator
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

# Operations whose output at a position depends on the inputs at that position only (elementwise, or across
# channels): the output's field is the union of the inputs' fields. BatchNorm is among them because the field
# is computed in eval mode, where BatchNorm applies fixed statistics.
POSITIONWISE = {
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
    nn.Tanh, nn.Hardswish, nn.Softplus, nn.Dropout, nn.Dropout2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.ChannelShuffle,
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.gelu, F.silu, F.mish, torch.sigmoid, torch.tanh,
    F.hardswish, F.softplus, F.dropout, F.dropout2d, F.channel_shuffle,
    operator.add, operator.iadd, operator.sub, operator.mul, operator.imul, operator.truediv, operator.neg,
    torch.add, torch.sub, torch.mul, torch.div,
    "relu", "sigmoid", "tanh", "add", "sub", "mul", "div", "contiguous", "clone", "float", "to",
}
# Sliding windows: convolutions and pooling. Their arguments by position, for the functional forms.
WINDOWS = {nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, F.conv2d, F.max_pool2d, torch.max_pool2d, F.avg_pool2d}
SIGNATURES = {
    F.conv2d: ("input", "weight", "bias", "stride", "padding", "dilation"),
    F.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation"),
    torch.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation"),
    F.avg_pool2d: ("input", "kernel_size", "stride", "padding"),
}
ADAPTIVE = {nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
LINEAR = {nn.Linear, F.linear}
# Operations along a `dim`: across channels they act position by position; over the spatial axes (reductions),
# or over a flattened map's features, they see the whole map.
CONCATENATE = {torch.cat, torch.concat}
SOFTMAX = {nn.Softmax, nn.LogSoftmax, F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, "softmax",
           "log_softmax"}
REDUCTIONS = {torch.mean, torch.sum, torch.amax, "mean", "sum", "amax"}
RESHAPES = {nn.Flatten, torch.flatten, torch.reshape, torch.squeeze, "flatten", "view", "reshape", "squeeze"}
PERMUTES = {torch.transpose, torch.permute, "transpose", "permute"}


class ReceptiveFieldError(ValueError):
    """The receptive field cannot be computed exactly; the message names the model, the node and the reason."""


@dataclass(frozen=True)
class Field:
    """The receptive field of each position of a feature map along one axis, in input pixels.

    size: positions along the axis (for a flattened map: those of the map before it was flattened);
    rf: the width of one position's field; jump: the distance between neighbouring positions' fields;
    start: where position 0's field begins (negative: in the padding)."""
    size: int
    rf: int
    jump: int
    start: int

    def window(self, kernel: int, stride: int, padding: int, size_out: int) -> Field:
        """The field after a window of `kernel` positions, moved by `stride`, over the map padded by `padding`."""
        return Field(size_out, self.rf + (kernel - 1) * self.jump, self.jump * stride, self.start - padding * self.jump)


def union(fields: list[Field]) -> Field:
    """The field of an output that combines the inputs' same positions: from the leftmost start to the rightmost end."""
    start = min(f.start for f in fields)
    return Field(fields[0].size, max(f.start + f.rf for f in fields) - start, fields[0].jump, start)


def receptive_field(model: nn.Module, input_size=(1, 28, 28)) -> tuple[list[dict], int]:
    """Per-layer table and final receptive field (in input pixels) of `model` for one (channels, height, width)
    input, from its torch.fx graph (module docstring: the method and its source).

    Each row is a layer that changes the field (conv, pool, global pool, Linear) or a merge of parallel paths:
    layer (module path, or the graph node's name for a function), type, kernel, stride, padding (None for a
    merge), size_in and size_out (positions along one axis), jump_in (input pixels between neighbouring inputs)
    and rf after the layer. Height and width must behave alike: a non-square map or kernel raises.

    Raises ReceptiveFieldError when the model cannot be traced, does not run on a zero input of `input_size`,
    or holds an operation whose effect on the field is not known here; the message says which and why."""
    graph = shaped_graph(model, input_size)
    fields: dict[fx.Node, Field] = {}
    rows: list[dict] = []
    try:
        for node in graph.graph.nodes:
            if node.op == "placeholder":
                fields[node] = Field(map_size(node), rf=1, jump=1, start=0)
            elif node.op == "output":
                output = node.args[0]
                if not (isinstance(output, fx.Node) and output in fields):
                    raise ReceptiveFieldError("the output is not one tensor computed from the input")
            elif node.op != "get_attr":
                sources = [n for n in node.all_input_nodes if n in fields]
                if sources and node.meta.get("tensor_meta") is not None:  # else: from parameters only, or a shape
                    fields[node] = step(node, sources, fields, rows)
    except ReceptiveFieldError as err:
        raise ReceptiveFieldError(f"{type(model).__name__}: {err}") from None
    return rows, fields[output].rf


def shaped_graph(model: nn.Module, input_size) -> fx.GraphModule:
    """The model's torch.fx graph, each node's output shape in node.meta['tensor_meta'] (one eval-mode pass)."""
    try:
        graph = fx.symbolic_trace(model)
    except Exception as err:
        raise ReceptiveFieldError(
            f"{type(model).__name__} cannot be traced by torch.fx, so its receptive field is not computed (only a "
            f"traced graph tells parallel paths and functional layers apart): {untraceable(err)}") from err
    was_training = model.training
    device = next(model.parameters(), torch.empty(0)).device
    try:
        model.eval()
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints its own traceback
            ShapeProp(graph).propagate(torch.zeros(1, *input_size, device=device))
    except Exception as err:
        cause = err
        while cause.__cause__ is not None:  # ShapeProp wraps the layer's error in its own
            cause = cause.__cause__
        failed = next((n for n in graph.graph.nodes if n.op != "output" and "tensor_meta" not in n.meta), None)
        at = " at '{}' ({})".format(*label(failed)) if failed is not None else ""
        raise ReceptiveFieldError(f"{type(model).__name__} does not run on a zero input of shape "
                                  f"(1, {', '.join(map(str, input_size))}){at}: "
                                  f"{type(cause).__name__}: {cause}") from err
    finally:
        model.train(was_training)
    return graph


def untraceable(err: Exception) -> str:
    """Why torch.fx could not trace a forward(), naming the line of the model's code where it stopped."""
    torch_dir = Path(torch.__file__).parent
    own = [f for f in traceback.extract_tb(err.__traceback__)
           if not Path(f.filename).is_relative_to(torch_dir) and f.filename != __file__]
    where = f"line {own[-1].lineno} of {Path(own[-1].filename).name}, `{own[-1].line}`, " if own else "forward() "
    text = str(err)
    if "'len' is not supported" in text:
        return f"{where}calls len() on a tensor, which torch.fx does not record; x.size(0) or x.shape[0] it does"
    if "control flow" in text:
        return (f"{where}uses a tensor in Python control flow (if, while, and/or, bool()): its value, or its shape "
                "or x.dim() compared in an if; torch.fx traces without real tensors, so it cannot pick a branch")
    return f"{where}raised {type(err).__name__}: {text}"


def module_of(node: fx.Node) -> nn.Module | None:
    return node.graph.owning_module.get_submodule(node.target) if node.op == "call_module" else None


def label(node: fx.Node) -> tuple[str, str]:
    """(layer, type) as the table shows a node: a module's path and class, or a function's or method's name."""
    if node.op == "call_module":
        return node.target, type(module_of(node)).__name__
    return node.name, getattr(node.target, "__name__", str(node.target))


def refuse(node: fx.Node, reason: str) -> ReceptiveFieldError:
    layer, kind = label(node)
    return ReceptiveFieldError(f"the receptive field is not computed at '{layer}' ({kind}): {reason}")


def map_size(node: fx.Node) -> int | None:
    """Positions along one axis of the node's output: the width of a map (n, channels..., h, w), whose height
    must equal its width; None for a flat (n, features) tensor."""
    meta = node.meta.get("tensor_meta")
    if not isinstance(meta, TensorMetadata):
        raise refuse(node, "it returns several tensors, which this tool does not follow")
    shape = tuple(meta.shape)
    if len(shape) == 2:
        return None
    if len(shape) < 4 or shape[-2] != shape[-1]:
        raise refuse(node, f"its output has shape {shape}; only square maps (n, channels..., h, w) and "
                                  "flat (n, features) tensors are followed")
    return shape[-1]


def one(node: fx.Node, name: str, value) -> int:
    """A layer argument that must be the same along height and width, as one int."""
    values = set(value) if isinstance(value, (tuple, list)) else {value}
    if len(values) != 1:
        raise refuse(node, f"{name}={value!r} differs between height and width; this tool follows one axis")
    return int(values.pop())


def arguments(node: fx.Node, module: nn.Module | None) -> dict:
    """A layer's arguments by name: a module's attributes, or a functional call's arguments."""
    if module is not None:
        return vars(module)
    return {**dict(zip(SIGNATURES.get(node.target, ("input", "dim")), node.args)), **node.kwargs}


def window_of(node: fx.Node, module: nn.Module | None, size_in: int, size_out: int):
    """(effective kernel, stride, padding) of a convolution or pooling layer along one axis."""
    if (module.__class__ if module is not None else node.target) in ADAPTIVE:
        if size_in % size_out:
            raise refuse(node, f"adaptive pooling from {size_in} to {size_out} positions uses windows of "
                                      "unequal size and spacing")
        return size_in // size_out, size_in // size_out, 0
    args = arguments(node, module)
    if args.get("padding_mode", "zeros") != "zeros":
        raise refuse(node, f"padding_mode={args['padding_mode']!r}: only zero padding is followed")
    conv = isinstance(module, nn.Conv2d) or node.target is F.conv2d
    kernel = one(node, "kernel_size", args["weight"].meta["tensor_meta"].shape[2:] if node.target is F.conv2d
                 else args["kernel_size"])
    stride = one(node, "stride", args.get("stride") or (1 if conv else kernel))
    k = one(node, "dilation", args.get("dilation") or 1) * (kernel - 1) + 1
    padding = args.get("padding", 0)
    p = {"valid": 0, "same": (k - 1) // 2}[padding] if isinstance(padding, str) else one(node, "padding", padding)
    return k, stride, p


def dims_of(node: fx.Node, module: nn.Module | None, ndim: int) -> set[int]:
    """The dimensions an operation along `dim` (softmax, cat, mean, ...) works on, non-negative (empty: all)."""
    dim = arguments(node, module).get("dim", 0 if node.target in CONCATENATE else None)
    return set() if dim is None else {d % ndim for d in (dim if isinstance(dim, (tuple, list)) else [dim])}


def permutation(node: fx.Node, ndim: int) -> list[int]:
    """The order of the input's dimensions in the output of a transpose or permute."""
    if node.target in ("transpose", torch.transpose):
        d0, d1 = (node.args[1:] + (node.kwargs.get("dim0"), node.kwargs.get("dim1")))[:2]
        order = list(range(ndim))
        order[d0 % ndim], order[d1 % ndim] = order[d1 % ndim], order[d0 % ndim]
        return order
    dims = node.kwargs.get("dims", node.args[1:])
    return [d % ndim for d in (dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)]


def effect(node: fx.Node, op, module: nn.Module | None, source: fx.Node, field_in: Field) -> str:
    """What the node does to the field: 'positionwise' (each output position comes from the same position of
    its inputs), 'flatten', 'window' (convolution, pooling) or 'whole map' (global pooling, Linear on a
    flattened map); raises ReceptiveFieldError for anything else."""
    shape_in, shape_out = source.meta["tensor_meta"].shape, node.meta["tensor_meta"].shape
    ndim, flat = len(shape_in), len(shape_in) == 2
    if op in POSITIONWISE:
        return "positionwise"
    if op in RESHAPES and len(shape_out) == 2:
        return "flatten"
    if op in PERMUTES and not flat:
        order = permutation(node, ndim)
        if order[0] == 0 and order[-2:] == [ndim - 2, ndim - 1]:
            return "positionwise"  # channels reordered (a channel shuffle): every value stays at its position
    if op in RESHAPES and not flat and len(shape_out) > 2 and shape_out[-2:] == shape_in[-2:]:
        return "positionwise"  # channels regrouped, height and width kept: every value stays at its position
    if op in WINDOWS | ADAPTIVE and ndim == 4:
        return "window"
    if op in LINEAR and flat:
        return "whole map"
    if op in CONCATENATE | SOFTMAX | REDUCTIONS:
        along = dims_of(node, module, ndim)
        if along and along <= ({1} if flat else set(range(1, ndim - 2))):  # channels, or a flat tensor's features
            # a flat tensor's features are the positions of the map it was flattened from, unless that map was 1x1
            mixes_positions = flat and field_in.size > 1 and op not in CONCATENATE
            return "whole map" if mixes_positions else "positionwise"
        if op in REDUCTIONS and not flat and 0 not in along and along >= {ndim - 2, ndim - 1}:
            return "whole map"
    raise refuse(node, "its effect on the receptive field is not known here (followed: Conv2d, MaxPool2d, "
                              "AvgPool2d, adaptive pooling, global mean/sum/amax, flatten, Linear on a flattened map, "
                              "activations, BatchNorm, dropout, channel shuffles, softmax over channels, and "
                              "add/sub/mul/div/cat of parallel paths)")


def step(node: fx.Node, sources: list[fx.Node], fields: dict, rows: list[dict]) -> Field:
    """The field of one node's output from its inputs' fields; appends the node's row when it is a layer or a merge."""
    module = module_of(node)
    op = type(module) if module is not None else node.target
    inputs = [fields[n] for n in sources]
    field_in, size_in, size_out = inputs[0], map_size(sources[0]), map_size(node)
    kind = effect(node, op, module, sources[0], field_in)
    if kind == "flatten":
        return field_in  # each feature keeps its field until a Linear (or a softmax, a mean) mixes them
    if kind == "positionwise":
        if len({(f.size, f.jump) for f in inputs}) > 1:
            raise refuse(node, "it combines maps of different sizes or strides (broadcasting); only "
                                      "positions that lie on one grid are merged")
        field = union(inputs)
        if len(inputs) > 1:
            rows.append(row(node, None, None, None, field_in.size, field_in.size, field_in.jump, field.rf))
        return field
    if kind == "window":
        k, s, p = window_of(node, module, size_in, size_out)
    else:  # one window over the whole map (for a flat input: the map it was flattened from)
        (k, s, p), size_in, size_out = (field_in.size, field_in.size, 0), field_in.size, 1
    field = field_in.window(k, s, p, size_out)
    rows.append(row(node, k, s, p, size_in, size_out, field_in.jump, field.rf))
    return field


def row(node: fx.Node, kernel, stride, padding, size_in, size_out, jump_in, rf) -> dict:
    layer, kind = label(node)
    return dict(layer=layer, type=kind, kernel=kernel, stride=stride, padding=padding, size_in=size_in,
                size_out=size_out, jump_in=jump_in, rf=rf)


# The table's columns: heading, row key, least width, alignment.
COLUMNS = [("layer", "layer", 16, "<"), ("type", "type", 18, "<"), ("k", "kernel", 3, ">"), ("s", "stride", 3, ">"),
           ("p", "padding", 3, ">"), ("in", "size_in", 5, ">"), ("out", "size_out", 5, ">"),
           ("jump", "jump_in", 6, ">"), ("RF", "rf", 5, ">")]


def format_receptive_field(rows: list[dict]) -> str:
    """The table as aligned plain text (reads the same in a notebook, a log and a test); '-' where a merge has no
    kernel, stride or padding. A column widens for a longer entry, so that neighbours never run together."""
    cells = [[heading for heading, *_ in COLUMNS]] + [
        ["-" if r[key] is None else str(r[key]) for _, key, _, _ in COLUMNS] for r in rows]
    widths = [max(least, *(len(line[i]) + 1 for line in cells)) for i, (_, _, least, _) in enumerate(COLUMNS)]
    lines = ["".join(f"{cell:{align}{width}}" for cell, width, (*_, align) in zip(line, widths, COLUMNS))
             for line in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])
