import json

import pytest
import torch

from era_s7 import results
from era_s7.model import make_model
from era_s7.results import HISTORY_KEYS, RECORD_KEYS


def fake_history(n=3):
    return [dict(epoch=i, train_loss=0.1, train_acc=98.0, test_loss=0.05, test_acc=99.0 + i / 100, lr=0.01, seconds=1.0)
            for i in range(1, n + 1)]


def test_record_schema_and_round_trip(tmp_path):
    model = make_model("Model_3")
    record = results.make_record("unit", model, {"epochs": 3}, 7, fake_history(), 3.0)
    assert set(record) == set(RECORD_KEYS)
    assert record["model"] == "Model_3" and record["seed"] == 7 and record["epochs"] == 3
    assert record["params"] == sum(p.numel() for p in model.parameters())
    assert all(set(row) == set(HISTORY_KEYS) for row in record["history"])
    path = results.save_run(record, model, tmp_path)
    assert json.loads(path.read_text()) == record
    restored = results.load_weights(make_model("Model_3", seed=1), tmp_path / "unit.pt")
    for a, b in zip(restored.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_weights_are_loaded_safely_and_mismatches_explained(tmp_path):
    torch.save({"not": "weights"}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="cannot load weights .*Model_3"):
        results.load_weights(make_model("Model_3"), tmp_path / "wrong.pt")

    class Payload:  # a pickle that would run code: weights_only refuses it
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save(Payload(), tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="cannot load weights"):
        results.load_weights(make_model("Model_3"), tmp_path / "evil.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "wrong.pt").read_bytes()[:20])
    with pytest.raises(ValueError, match="cannot load weights"):
        results.load_weights(make_model("Model_3"), tmp_path / "truncated.pt")


def test_interrupted_save_keeps_previous_files(tmp_path, monkeypatch):
    model = make_model("Model_3")
    record = results.make_record("unit", model, {}, 0, fake_history(), 1.0)
    results.save_run(record, model, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.json, "dumps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        results.save_run(dict(record, seed=99), model, tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after.keys() == before.keys() and after["unit.json"] == before["unit.json"]


def test_model_source_hash_tracks_the_class():
    assert results.model_source_sha256(type(make_model("Model_3"))) != results.model_source_sha256(type(make_model("Model_2")))
    assert len(results.model_source_sha256(type(make_model("Model_1")))) == 64
