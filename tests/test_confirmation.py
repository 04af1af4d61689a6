"""The confirmation pooled by arithmetic (era_s7.confirmation): one run a seed per pool, processors paired where
they ran the same seeds, the statistics and the histogram."""
import json

from era_s7 import confirmation


def fake(seed, minimum, device_name="CPU A", precision="bf16", device="cpu"):
    history = [dict(epoch=i, test_acc=99.6, train_acc=99.0) for i in range(1, 11)] + \
        [dict(epoch=11, test_acc=minimum, train_acc=99.0)] + [dict(epoch=i, test_acc=99.6, train_acc=99.0)
                                                             for i in range(12, 16)]
    return dict(name=f"m-seed{seed}", seed=seed, split="test", model="Model_3", model_source_sha256="s",
                hyperparameters={"lr": 0.1, "bf16": precision == "bf16", "channels_last": precision == "bf16"},
                device=device, device_name=device_name, precision=precision, history=history, total_seconds=1.0)


def write(path, runs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(name="m-test", runs=runs)))


def test_pools_by_arithmetic_count_a_seed_once_and_pair_the_processors(tmp_path):
    sweeps = tmp_path / "results" / "sweeps"
    write(sweeps / "a" / "bf16" / "m-test.json", [fake(s, 99.50 + s / 100) for s in (1, 2, 3)])
    write(sweeps / "b" / "bf16" / "m-test.json", [fake(s, 99.38 if s == 3 else 99.52, "CPU B") for s in (2, 3, 4)])
    write(sweeps / "g" / "m-test.json", [fake(s, 99.45, "GPU", "fp32", "cuda") for s in (1, 2)])
    found = confirmation.pools(fake(1, 99.5), sweeps)
    assert sorted(found) == ["bf16 CPU", "fp32 GPU"]
    bf16 = found["bf16 CPU"]
    assert sorted(bf16["runs"]) == [1, 2, 3, 4] and bf16["runs"][3]["device_name"] == "CPU A"  # the first file's
    (path, paired), = bf16["pairs"]
    assert path == "sweeps/b/bf16/m-test.json" and paired["min"][2] == 2
    s = confirmation.summary(list(bf16["runs"].values()))
    assert (s["held"], s["n"]) == (4, 4) and s["lowest"][0] == (99.51, 1, "CPU A")
    text = confirmation.section(fake(1, 99.5), sweeps, tmp_path / "f.png", "f.png")
    assert ("| bf16 CPU | 4 | 4 of 4 |" in text and "| fp32 GPU | 2 | 2 of 2 |" in text
            and (tmp_path / "f.png").is_file())
    assert "`results/sweeps/b/bf16/m-test.json` − the pool on the 2 seeds both have" in text
