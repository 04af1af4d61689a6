"""The three steps' committed weights as ONNX models for the web demo: python -m era_s7.tools.export [--force]

Writes web/models/step{1,2,3}.onnx (torch.onnx's exporter, input "image" (batch, 1, 28, 28) normalised,
output "logits" (batch, 10)) and web/models/manifest.json, which records for each model the sha256 of the
results/step<N>.pt it was exported from and of the .onnx file. A model whose manifest entry matches both is
up to date and is not exported again. The page (web/app.js) compares the same hashes and says in words when a
model file is missing or stale; tests/test_web.py fails when an export is stale.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch

from ..data import atomic_write_bytes
from ..results import REPO_ROOT, RESULTS_DIR
from .predict import STEP_WEIGHTS, load_model

WEB_DIR = REPO_ROOT / "web"
MODELS_DIR = WEB_DIR / "models"
MANIFEST = "manifest.json"
OPSET = 20
WEB_MODULES = ("onnx", "onnxscript", "onnxruntime")  # the package's `web` extra (pyproject.toml)
INSTALL_WEB = 'pip install -e ".[web]"'


def missing_web_modules() -> list[str]:
    """Those of WEB_MODULES (torch.onnx's exporter needs onnx and onnxscript; the check, onnxruntime) not installed."""
    return [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]


def sha256_of(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def onnx_bytes(model: torch.nn.Module) -> bytes:
    """`model` (eval mode) as an ONNX file's bytes, with a dynamic batch dimension."""
    example = torch.zeros(1, 1, 28, 28)
    program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET, input_names=["image"],
                                output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                                verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        program.save(path, external_data=False)
        return path.read_bytes()


def manifest_entry(name: str, results_dir: Path, models_dir: Path) -> dict:
    """What the manifest records for one model as the files are now on disk."""
    step = Path(STEP_WEIGHTS[name]).stem
    onnx_path = models_dir / f"{step}.onnx"
    weights = results_dir / STEP_WEIGHTS[name]
    return dict(model=name, onnx=onnx_path.name, onnx_sha256=sha256_of(onnx_path) if onnx_path.is_file() else None,
                weights=f"results/{weights.name}", weights_sha256=sha256_of(weights))


def read_manifest(models_dir: Path = MODELS_DIR) -> dict:
    """The manifest's entries by model name; {} when there is none."""
    path = Path(models_dir) / MANIFEST
    return {e["model"]: e for e in json.loads(path.read_text())["models"]} if path.is_file() else {}


def stale_exports(results_dir: Path | str = RESULTS_DIR, models_dir: Path | str = MODELS_DIR) -> list[str]:
    """One sentence per model whose .onnx is missing, or whose manifest entry no longer matches the files."""
    recorded = read_manifest(Path(models_dir))
    problems = []
    for name in STEP_WEIGHTS:
        now = manifest_entry(name, Path(results_dir), Path(models_dir))
        if now["onnx_sha256"] is None:
            problems.append(f"{name}: {now['onnx']} is missing")
        elif recorded.get(name) != now:
            problems.append(f"{name}: {now['onnx']} was not exported from the current {now['weights']}")
    return problems


def export(results_dir: Path | str = RESULTS_DIR, models_dir: Path | str = MODELS_DIR, force: bool = False,
           log=print) -> dict:
    """Export every step's weights that changed since the last export (all of them with `force`); write the
    manifest; return it. Each model is checked against PyTorch (onnxruntime, max |logit difference| <= 1e-4)
    before it is written."""
    results_dir, models_dir = Path(results_dir), Path(models_dir)
    recorded = read_manifest(models_dir)
    entries = []
    for name in STEP_WEIGHTS:
        entry = manifest_entry(name, results_dir, models_dir)
        if not force and recorded.get(name) == entry:
            log(f"{name}: {models_dir.name}/{entry['onnx']} is up to date with {entry['weights']}")
        else:
            model = load_model(name, results_dir / STEP_WEIGHTS[name])
            payload = onnx_bytes(model)
            diff = max_logit_difference(payload, model)
            if diff > 1e-4:
                raise RuntimeError(f"{name}: the ONNX model's logits differ from PyTorch's by {diff:.2e} (> 1e-4)")
            atomic_write_bytes(models_dir / entry["onnx"], payload)
            entry = manifest_entry(name, results_dir, models_dir)
            log(f"{name}: exported {entry['weights']} to {models_dir.name}/{entry['onnx']} "
                f"({len(payload):,} bytes; max |logit difference| from PyTorch {diff:.1e})")
        entries.append(entry)
    manifest = dict(exporter=f"torch.onnx (dynamo), torch {torch.__version__.split('+')[0]}, opset {OPSET}",
                    input="image: (batch, 1, 28, 28) float32, MNIST-normalised", output="logits: (batch, 10)",
                    models=entries)
    atomic_write_bytes(models_dir / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def onnx_logits(model_bytes: bytes, x: torch.Tensor):
    """Run an ONNX model with onnxruntime on x (n, 1, 28, 28): logits (n, 10) as a NumPy array."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": x.numpy()})[0]


def max_logit_difference(model_bytes: bytes, model: torch.nn.Module, n: int = 200, seed: int = 0) -> float:
    """max |ONNX logits - PyTorch logits| over n random inputs, scaled like normalised MNIST."""
    x = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(x).numpy()
    return float(abs(onnx_logits(model_bytes, x) - expected).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m era_s7.tools.export", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="export even the models that are up to date")
    args = parser.parse_args(argv)
    missing = missing_web_modules()
    if missing:
        print(f"error: the export needs {', '.join(missing)}, which `pip install -e .` leaves out: they are the "
              f"package's `web` extra. Install it in the repository's root with: {INSTALL_WEB}", file=sys.stderr)
        return 2
    export(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
