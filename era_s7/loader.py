"""A learner's model class, from a spec: loaded from a file (`path/to/model.py:Net`) or a module
(`package.module:Net`), saved from a notebook cell to a file each seed's process imports again (`class_spec`), and
probed before anything trains (`probe`): it builds with no arguments, runs on a (1, 1, 28, 28) input and gives
(n, 10). What cannot be checked raises ModelRefused, saying which and why. The check (`learner.check_model`) and
the stale check of its records (`learner.stale_problems`) load classes through here."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import linecache
import os
import sys
from pathlib import Path

import torch
from torch import nn

from .data import atomic_write_bytes
from .summary import count_parameters

FILE_ATTRIBUTE = "__era_s7_check_file__"  # set on a module loaded from a file by `load_class`


class ModelRefused(ValueError):
    """The model cannot be checked: it fails to load, to build, to run on a (1, 1, 28, 28) input, or to give
    (n, 10) outputs. The message says which and why; nothing has trained."""


def load_file(path: Path | str):
    """The module of a Python file, imported under a name of its own (so that its classes' source can be hashed,
    and each seed's process imports the same file under the same name); its folder goes on sys.path, so that it
    may import its neighbours."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ModelRefused(f"{path} is not a file: write path/to/model.py:ClassName (or package.module:ClassName)")
    name = f"era_s7_check_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, FILE_ATTRIBUTE, None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ModelRefused(f"{path} cannot be imported as Python (a .py file is needed)")
    module = importlib.util.module_from_spec(spec)
    setattr(module, FILE_ATTRIBUTE, str(path))
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ModelRefused(f"{path} fails to import: {type(err).__name__}: {err}") from err
    return module


def load_class(spec: str) -> type:
    """The class `spec` names: 'path/to/model.py:ClassName' (a file) or 'package.module:ClassName' (importable).
    ModelRefused, saying why, when it cannot be loaded or is not a torch.nn.Module class."""
    where, colon, name = spec.rpartition(":")
    if not colon or not where or not name:
        raise ModelRefused(f"{spec!r}: write path/to/model.py:ClassName or package.module:ClassName")
    if where.endswith(".py") or os.sep in where or "/" in where or Path(where).is_file():
        module = load_file(where)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as err:
            raise ModelRefused(f"module {where!r} fails to import: {type(err).__name__}: {err} (a file is written "
                               "path/to/model.py:ClassName)") from err
    try:
        cls = module
        for part in name.split("."):
            cls = getattr(cls, part)
    except AttributeError:
        found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == module.__name__)
        raise ModelRefused(f"{where} has no {name!r}; the torch.nn.Module classes it defines: "
                           f"{found or 'none'}") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ModelRefused(f"{spec}: {name} is a {type(cls).__name__}, not a torch.nn.Module class")
    return cls


def class_spec(cls: type, beside: Path) -> str:
    """A spec from which each seed's process loads `cls` again: its file's, or its module's; for a class defined
    in a notebook cell (module __main__ without a file), the cell is first saved as `beside` (a .py file):
    the cell must hold the class and its imports, nothing that should not run again."""
    module = sys.modules.get(cls.__module__)
    if "<locals>" in cls.__qualname__:
        raise ModelRefused(f"{cls.__qualname__} is defined inside a function: define it at the top level of a file, "
                           "a module or a notebook cell")
    if getattr(module, FILE_ATTRIBUTE, None):
        return f"{getattr(module, FILE_ATTRIBUTE)}:{cls.__qualname__}"
    if cls.__module__ != "__main__":
        return f"{cls.__module__}:{cls.__qualname__}"
    if getattr(module, "__file__", None):  # a script run as __main__: imported again under a name of its own
        return f"{Path(module.__file__).resolve()}:{cls.__qualname__}"
    code = next((f.__code__ for f in vars(cls).values() if hasattr(f, "__code__")), None)
    lines = linecache.getlines(code.co_filename) if code is not None else []
    if not lines:
        raise ModelRefused(f"the source of {cls.__name__} is not found (it defines no method of its own, or was not "
                           "defined in a notebook cell): put it in a file and pass path/to/model.py:ClassName")
    beside.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(beside, (f"# The notebook cell that defines {cls.__name__}, saved by era_s7.tools.check: each "
                                        "seed's process imports it from here.\n" + "".join(lines)).encode())
    return f"{beside.resolve()}:{cls.__qualname__}"


def make_class(spec: str) -> nn.Module:
    """The model of a spec, built with no arguments (runs.build seeds it first): `make` of a check's runs, which
    pickles for a pool's process, where the class is loaded again from the same file."""
    return load_class(spec)()


def probe(cls: type) -> nn.Module:
    """The built model, after the checks that must pass before anything trains: it builds with no arguments,
    has trainable parameters, runs on a (1, 1, 28, 28) input (eval mode) and gives (1, 10), gives (2, 10) for a
    batch of 2 in training mode, and a backward pass through that works. ModelRefused names which and why."""
    name = cls.__name__
    try:
        model = cls()
    except Exception as err:
        raise ModelRefused(f"{name} fails to build: {name}() raised {type(err).__name__}: {err} (the check builds "
                           "the class with no arguments: give every argument of __init__ a default)") from err
    if count_parameters(model) == 0:
        raise ModelRefused(f"{name} has no trainable parameters: there is nothing to train")
    shape_hint = ("one score per digit: e.g. end with a 1x1 conv to 10 channels after global pooling, then "
                  "flatten, or x.view(-1, 10)")
    for mode, n in (("eval", 1), ("train", 2)):
        model.train(mode == "train")
        try:
            with torch.set_grad_enabled(mode == "train"):
                out = model(torch.zeros(n, 1, 28, 28))
                if mode == "train" and isinstance(out, torch.Tensor):
                    out.float().sum().backward()
        except Exception as err:
            where = ("fails on a (1, 1, 28, 28) input" if mode == "eval" else
                     "fails in training mode on a batch of 2 (forward and backward)")
            raise ModelRefused(f"{name} {where}: {type(err).__name__}: {err}") from err
        if not isinstance(out, torch.Tensor):
            raise ModelRefused(f"{name} gives a {type(out).__name__}, not a tensor of shape (n, 10): {shape_hint}")
        if tuple(out.shape) != (n, 10):
            raise ModelRefused(f"{name} gives outputs of shape {tuple(out.shape)} for a ({n}, 1, 28, 28) input, not "
                               f"(n, 10) = ({n}, 10): {shape_hint}")
    model.zero_grad(set_to_none=True)
    return model.train()
