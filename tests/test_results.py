import json
import re

import pytest
import torch

from era_s7 import machine, results
from era_s7.model import make_model
from era_s7.recipes import HYPERPARAMETERS
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
    assert (results.model_source_sha256(type(make_model("Model_3")))
            != results.model_source_sha256(type(make_model("Model_2"))))
    assert len(results.model_source_sha256(type(make_model("Model_1")))) == 64


@pytest.mark.parametrize("last5", [[98.62, 98.61, 98.57, 98.78, 98.72], [99.38, 99.41, 99.40, 99.45, 99.39],
                                   [99.46, 99.47, 99.46, 99.48, 99.49]])
def test_result_sentence_counts_what_the_numbers_say(last5):
    from era_s7.report import render_result
    record = results.make_record("unit", make_model("Model_3"), {"epochs": 15}, 1,
                                 [dict(h, test_acc=a) for h, a in zip(fake_history(15), [99.0] * 10 + last5)], 3.0)
    sentence = next(line for line in render_result(record).splitlines() if line.startswith("- Last 5 epochs"))
    held = sum(a >= 99.4 for a in last5)
    assert f"≥ 99.4% on {held} of 5" in sentence
    assert f"min **{min(last5):.2f}%**" in sentence and "below" not in sentence


def test_device_name_names_the_processor_and_records_the_threads():
    record = results.make_record("unit", make_model("Model_3"), {"epochs": 3}, 7, fake_history(), 3.0)
    assert record["threads"] == torch.get_num_threads()
    assert record["device_name"] and record["device_name"] != "cpu"


def test_studies_reuse_a_committed_run_only_under_the_same_condition(tiny_data, tmp_path, capsys):
    from era_s7 import utils
    hp = utils.run_hyperparameters(HYPERPARAMETERS, 1, smoke=True)
    utils.train("step3", make_model("Model_3", 1), tiny_data, hp, 1, tmp_path, log=lambda line: None)
    record = utils.train_runs("study", [("seed-1", "Model_3", hp, 1)], tiny_data, "cpu", tmp_path, reuse=("step3",))
    assert "reused, not retrained" in capsys.readouterr().out and record["runs"][0]["name"] == "seed-1"

    committed = results.load_record(tmp_path / "step3.json")
    results.save_json(dict(committed, threads=committed["threads"] + 1), tmp_path / "step3.json")  # another condition
    utils.train_runs("study", [("seed-1", "Model_3", hp, 1)], tiny_data, "cpu", tmp_path, reuse=("step3",))
    assert "reused" not in capsys.readouterr().out


def test_no_spread_is_reported_across_different_variants():
    from era_s7.report import render_result, runs_table
    run = results.make_record("a", make_model("Model_3"), {"epochs": 3, "lr": 0.1}, 1, fake_history(), 3.0)
    seeds = dict(name="seeds", runs=[run, dict(run, name="b", seed=2)])
    variants = dict(name="ablation", runs=[run, dict(run, name="b", hyperparameters={"epochs": 3, "lr": 0.2})])
    assert ("Final test accuracy over runs" in render_result(seeds)
            and "mean" in runs_table(seeds["runs"]).splitlines()[-1])
    assert "Final test accuracy over runs" not in render_result(variants)
    assert "final accuracy over" not in runs_table(variants["runs"])


def test_the_runs_table_keeps_its_columns_apart_when_a_runs_name_is_long():
    from era_s7.report import runs_table
    run = results.make_record("model3-b64-nodecay-ls005-seed10", make_model("Model_3"), {"epochs": 3}, 10,
                              fake_history(), 3.0)
    header, _, row = runs_table([run, dict(run, name="seed-2", seed=2)]).splitlines()[:3]
    assert row.split()[:2] == ["model3-b64-nodecay-ls005-seed10", "Model_3"]
    assert header.index("model") == row.index("Model_3")


def test_pooled_runs_are_the_runs_one_thread_trains_in_process(tiny_data, tmp_path, capsys):
    """Runs spread over pinned one-thread processes give the history a one-thread run here gives, bit for bit,
    come back in their listed order, and reuse a committed one-thread run."""
    from era_s7 import utils
    hp = utils.run_hyperparameters(HYPERPARAMETERS, 1, smoke=True)
    runs = [("a", "Model_3", hp, 1), ("b", "Model_3", hp, 2), ("a", "Model_3", hp, 3)]
    pooled = utils.train_runs("pooled", runs, tiny_data, "cpu", tmp_path, jobs=2)["runs"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = utils.train_runs("alone", runs, tiny_data, "cpu", tmp_path, jobs=1)["runs"]
        utils.train("step3", make_model("Model_3", 2), tiny_data, hp, 2, tmp_path, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    assert [(r["name"], r["seed"], r["threads"]) for r in pooled] == [("a", 1, 1), ("b", 2, 1), ("a", 3, 1)]

    def timeless(runs):
        return [{k: v for k, v in h.items() if k != "seconds"} for r in runs for h in r["history"]]

    assert timeless(pooled) == timeless(alone)
    capsys.readouterr()
    again = utils.train_runs("again", runs, tiny_data, "cpu", tmp_path, reuse=("step3",), jobs=2)["runs"]
    assert capsys.readouterr().out.count("reused, not retrained") == 1 and timeless(again) == timeless(pooled)


def test_variants_are_judged_by_their_seeds_together():
    from era_s7.report import render_result, variants_table
    shifts = {("full", 1): 0.5, ("full", 2): 0.6, ("- x", 1): 0.3, ("- x", 2): 0.5}  # paired: -0.2 and -0.1
    runs = [results.make_record(name, make_model("Model_3"), {"epochs": 15, "lr": 0.1 if name == "full" else 0.2}, seed,
                                [dict(h, test_acc=99.0 + shift) for h in fake_history(15)], 3.0)
            for (name, seed), shift in shifts.items()]
    table = variants_table(runs)
    assert "| full | 2 | 99.550 ± 0.071 | 99.55 | 2/2 | — | — |" in table
    assert "| - x | 2 | 99.400 ± 0.141 | 99.40 | 1/2 | -0.150 ± 0.050 | -3.0 |" in table
    assert table in render_result(dict(name="ablation", runs=runs))


def test_headline_and_condition_say_what_the_runs_say():
    """The README's headline counts the seeds whose every one of the last 5 epochs held, with the standard error of
    the last-5 means; the Result block's condition names processor, threads and precision."""
    from era_s7 import report

    def run(seed, last5):
        history = [dict(test_acc=acc, train_acc=99.0) for acc in [98.0] * 10 + last5]
        return dict(model="Model_3", params=7560, epochs=15, seed=seed, history=history, total_seconds=1.0,
                    device="cpu", device_name="AMD EPYC", threads=1, precision="bf16", memory_format="channels_last")

    record = dict(name="seeds", runs=[run(1, [99.5] * 5), run(2, [99.5, 99.5, 99.39, 99.5, 99.5]), run(3, [99.44] * 5)])
    # last-5 means 99.5, 99.478, 99.44: mean 99.473, std 0.0304, standard error 0.018
    assert ("on every one of its last 5 epochs on 2 of 3 seeds**, fixed before the runs; "
            "the mean of the last-5 means is 99.473 % ± 0.018") in report.headline(record)
    assert report.condition_words(record["runs"][0]) == "cpu (AMD EPYC), 1 thread, bf16 + channels_last"
    assert "confirmation" not in report.headline(record)


def test_the_headline_gives_the_whole_sweep_a_study_reused_runs_from(tmp_path):
    from era_s7 import report

    def run(seed, acc, **extra):
        return dict(model="Model_3", params=7864, epochs=15, seed=seed, total_seconds=1.0,
                    history=[dict(test_acc=acc, train_acc=99.0)] * 15, **extra)

    source = "sweeps/x/bf16/model3-test.json"
    (tmp_path / source).parent.mkdir(parents=True)
    (tmp_path / source).write_text(json.dumps(dict(runs=[run(s, 99.5 if s != 3 else 99.3) for s in range(1, 5)])))
    study = dict(name="seeds", runs=[run(1, 99.5), run(2, 99.5, reused_from=source), run(3, 99.3, reused_from=source)])
    said = report.headline(study, tmp_path)
    assert said.endswith("Seeds 2, 3 are runs of the search's test-set confirmation (`results/sweeps/x/bf16/"
                         "model3-test.json`). The confirmation, on all its 4 seeds, **holds on 3 of 4**, mean of the "
                         "last-5 means 99.450 % ± 0.050 ([docs/search.md](docs/search.md)).")
    # a run reused from another record is named, and said to equal the confirmation's same seed where it does
    study["runs"][0]["reused_from"] = "step3.json"
    assert "; seed 1 is the run of `results/step3.json`, epoch for epoch the confirmation's seed 1." in \
        report.headline(study, tmp_path)
    assert "confirmation" not in report.headline(study, tmp_path / "elsewhere")  # no such file: no number
    assert report.condition_words(dict(device="cuda")) == "cuda"  # older records: only what they have


def test_stale_records_judges_a_check_record_by_its_own_class(tmp_path):
    """A learner's model (era_s7.learner) is not in era_s7/model.py: its record is checked against the class it
    names."""
    from era_s7 import loader
    from era_s7.tools import stale
    (tmp_path / "mine.py").write_text("from torch import nn\n\nclass Mine(nn.Module):\n    pass\n")
    sha = results.model_source_sha256(loader.load_class(f"{tmp_path / 'mine.py'}:Mine"))
    record = dict(name="mine", kind="check", model="Mine", model_spec="mine.py:Mine", model_source_sha256=sha,
                  runs=[dict(model="Mine", model_source_sha256=sha, history=[])])
    results.save_json(record, tmp_path / "mine.json")
    assert stale.stale_records(tmp_path) == []
    results.save_json(dict(record, model_source_sha256="0" * 64), tmp_path / "mine.json")
    assert "changed after its check" in stale.stale_records(tmp_path)[0]


def test_a_trained_run_of_a_model_the_receptive_field_tool_refuses_is_kept_with_rf_unknown():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Upsample(scale_factor=2),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
    record = results.make_record("up", model, {}, 1, [], 1.0)
    assert record["receptive_field"] is None and "Upsample" in record["receptive_field_refused"]
    assert "receptive_field_refused" not in results.make_record("m3", make_model("Model_3"), {}, 1, [], 1.0)


def test_records_made_before_arithmetic_was_recorded_are_labelled_as_inferred(tmp_path):
    old = dict(name="a", device_name="AMD EPYC", history=[])
    results.save_json(old, tmp_path / "a.json")
    results.save_json(dict(old, name="b", device_name="Some CPU"), tmp_path / "b.json")  # unknown: left unknown
    sweep_file = dict(runs=[dict(old, seed=1)], condition={})
    results.save_json(sweep_file, tmp_path / "sweeps" / "c.json")
    assert len(results.relabel_arithmetic(tmp_path)) == 2
    a = results.load_record(tmp_path / "a.json")
    assert a["arithmetic"] == "AVX512 +avx512_bf16" and "inferred" in a["arithmetic_inferred"]
    assert "arithmetic" not in results.load_record(tmp_path / "b.json")
    assert results.load_record(tmp_path / "sweeps" / "c.json")["condition"]["arithmetic"] == "AVX512 +avx512_bf16"
    assert results.relabel_arithmetic(tmp_path) == []  # idempotent
    assert machine.arithmetic("cpu").split()[0] == torch.backends.cpu.get_cpu_capability()


def test_a_committed_run_made_before_a_hyperparameter_existed_is_reused(tiny_data, tmp_path, capsys):
    """New hyperparameters default to off: a record without them is the same recipe, and may stand in."""
    from era_s7 import utils
    hp = utils.run_hyperparameters({"ema": 0.9}, 1, True)
    first = utils.train_runs("old", [("seed-1", "Model_3", hp, 1)], tiny_data, "cpu", tmp_path)
    run = first["runs"][0]
    run["hyperparameters"] = {k: v for k, v in run["hyperparameters"].items() if k != "distill"}  # made before it
    results.save_json(dict(first, runs=[run]), tmp_path / "old.json")
    capsys.readouterr()
    utils.train_runs("study", [("seed-1", "Model_3", hp, 1)], tiny_data, "cpu", tmp_path, reuse=("old",))
    assert "reused, not retrained" in capsys.readouterr().out


def test_a_sweeps_test_split_run_stands_in_for_a_studys_and_a_validation_split_run_never(tiny_data, tmp_path, capsys):
    """The search's runs on the test split are the notebooks' computation (all 60,000 training images, scored on
    the test set): a study may reuse one, and says which file it came from; a validation-split run of the same
    model, recipe and seed was scored on held-out training images, and never stands in."""
    from era_s7 import utils
    from era_s7.tools import sweep
    hp = utils.run_hyperparameters(HYPERPARAMETERS, 1, smoke=True)
    run = utils.train("c-seed1", make_model("Model_3", 1), tiny_data, hp, 1, save=False, log=lambda line: None)
    folder = tmp_path / "sweeps" / "machine" / "bf16"
    sweep.add_run("c", "validation", dict(run, candidate="c", split="validation"), folder)
    capsys.readouterr()
    record = utils.train_runs("study", [("seed-1", "Model_3", hp, 1)], tiny_data, "cpu", tmp_path,
                              reuse=("sweeps/**/*-validation",))
    assert "reused" not in capsys.readouterr().out and "reused_from" not in record["runs"][0]

    sweep.add_run("c", "test", dict(run, candidate="c", split="test"), folder)
    record = utils.train_runs("study", [("seed-1", "Model_3", hp, 1)], tiny_data, "cpu", tmp_path,
                              reuse=("sweeps/**/*-validation", "sweeps/**/*-test"))
    assert "is on disk (results/sweeps/machine/bf16/c-test.json); reused, not retrained" in capsys.readouterr().out
    reused = record["runs"][0]
    assert reused["name"] == "seed-1" and reused["reused_from"] == "sweeps/machine/bf16/c-test.json"
    assert "split" not in reused and "candidate" not in reused and reused["history"] == run["history"]
    # a study that reuses the study keeps naming the file the run was trained into
    again = utils.train_runs("again", [("full", "Model_3", hp, 1)], tiny_data, "cpu", tmp_path, reuse=("study",))
    assert again["runs"][0]["reused_from"] == "sweeps/machine/bf16/c-test.json"


def test_both_arithmetics_are_found_counted_and_paired_seed_by_seed(tmp_path):
    """The search's test-set confirmations of one model and recipe in two arithmetics (one folder per condition):
    found by model, code and recipe (precision apart), the run's own arithmetic first; each one's hold count, and
    the paired difference in the last-5 mean and in the last-5 minimum, seed by seed."""
    from era_s7 import confirmation, report

    def run(seed, last5, gpu, split="test", ema=0.998):
        hp = dict(ema=ema) if gpu else dict(ema=ema, bf16=True, channels_last=True)
        return dict(name=f"x-seed{seed}", model="Model_3", model_source_sha256="abc", seed=seed, split=split,
                    params=7864, epochs=15, total_seconds=1.0, hyperparameters=hp,
                    history=([dict(test_acc=98.0, train_acc=99.0)] * 10
                             + [dict(test_acc=a, train_acc=99.0) for a in last5]),
                    device="NVIDIA H200" if gpu else "cpu", device_name="NVIDIA H200" if gpu else "Xeon",
                    precision="fp32" if gpu else "bf16")

    cpu = [run(1, [99.5] * 5, False), run(2, [99.3] * 5, False), run(3, [99.45] * 5, False)]
    gpu = [run(1, [99.52] * 4 + [99.47], True), run(2, [99.41] * 5, True), run(3, [99.45] * 5, True)]
    files = {"a-gpu/x-test.json": gpu, "b-cpu/bf16/x-test.json": cpu,
             "b-cpu/bf16/x-validation.json": [run(1, [99.5] * 5, False, split="validation")],  # not the test split
             "c-other/y-test.json": [run(1, [99.5] * 5, True, ema=0.99)]}  # another recipe
    for path, runs in files.items():
        (tmp_path / "sweeps" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "sweeps" / path).write_text(json.dumps(dict(runs=runs)))
    found = confirmation.confirmations(cpu[0], tmp_path / "sweeps")
    assert [path for path, _ in found] == ["sweeps/b-cpu/bf16/x-test.json", "sweeps/a-gpu/x-test.json"]
    # last-5 means, GPU - CPU: +0.01, +0.11, 0 (mean 0.040, SE 0.035); minima: -0.03, +0.11, 0 (0.027, 0.043)
    assert confirmation.arithmetics_sentence(cpu[0], tmp_path / "sweeps") == (
        "The search's test-set confirmation: **2 of 3** seeds hold in bf16 CPU, **3 of 3** in fp32 GPU; fp32 GPU − "
        "bf16 CPU, paired by seed: +0.040 ± 0.035 (last-5 mean), +0.027 ± 0.043 (last-5 min), ± standard error over "
        "3 seeds.")
    table = confirmation.arithmetics_table(cpu[0], tmp_path / "sweeps")
    assert ("| bf16 on a CPU (Xeon) | `results/sweeps/b-cpu/bf16/x-test.json` | 3 | 2/3 | 99.417 ± 0.060 | "
            "99.417 ± 0.060 | 99.30 (seed 2) |") in table
    assert ("| fp32 on a GPU (NVIDIA H200) | `results/sweeps/a-gpu/x-test.json` | 3 | 3/3 | 99.457 ± 0.029 | "
            "99.443 ± 0.018 | 99.41 (seed 2) |") in table
    assert ("last-5 mean +0.040 ± 0.035 (+1.1 standard errors), last-5 min +0.027 ± 0.043 (+0.6 standard errors)"
            in table)
    # seen from the GPU's run, its own file comes first and the difference changes sign
    assert confirmation.arithmetics_sentence(gpu[0], tmp_path / "sweeps").endswith(
        "bf16 CPU − fp32 GPU, paired by seed: -0.040 ± 0.035 (last-5 mean), -0.027 ± 0.043 (last-5 min), ± standard "
        "error over 3 seeds.")
    study = dict(name="seeds", runs=[cpu[0]])
    assert report.headline(study, tmp_path).endswith(confirmation.arithmetics_sentence(cpu[0], tmp_path / "sweeps"))
    # a study that reused the CPU file's runs: that file's mean, and the hold counts once, every arithmetic's
    reused = report.headline(dict(name="seeds", runs=[dict(cpu[0], reused_from="sweeps/b-cpu/bf16/x-test.json")]),
                             tmp_path)
    assert ("(`results/sweeps/b-cpu/bf16/x-test.json`). The confirmation, on all its 3 seeds, has a mean of the "
            "last-5 means of 99.417 % ± 0.060 ([docs/search.md](docs/search.md)). "
            "The search's test-set confirmation: **2 of 3**") in reused
    (tmp_path / "sweeps" / "a-gpu" / "x-test.json").unlink()  # one arithmetic: nothing to compare, nothing said
    assert confirmation.arithmetics_sentence(cpu[0], tmp_path / "sweeps") == ""
    assert "arithmetics" not in report.headline(study, tmp_path)


def test_result_block_says_whose_weights_were_scored_and_where_the_runs_come_from():
    """A run evaluated through a weight EMA says so, with its trained weights' own last 5 epochs beside; a study
    says which of its runs it trained and which it reused or read from others (their seconds were spent elsewhere)."""
    from era_s7.report import render_result

    def run(seed, ema=0.0, raw=None, seconds=10.0, **extra):
        history = [dict(epoch=e, test_acc=99.5, train_acc=99.0, **({"raw_test_acc": raw} if raw else {}))
                   for e in range(1, 16)]
        return dict(name=f"r{seed}", model="Model_3", params=7864, receptive_field=28, epochs=15, seed=seed,
                    device="cpu", torch="2.x", hyperparameters=dict(ema=ema), history=history, total_seconds=seconds,
                    **extra)

    block = render_result(dict(run(1, ema=0.998, raw=99.38), name="step3"))
    assert "- Test accuracy (weight EMA, decay 0.998): best **99.50%**" in block
    assert "- Without the EMA: 99.38, 99.38, 99.38, 99.38, 99.38 — min 99.38%\n" in block + "\n"
    plain = render_result(dict(run(1), name="step1"))
    assert "EMA" not in plain and "- Test accuracy: best **99.50%**" in plain
    study = dict(name="study", runs=[run(1, seconds=5.0), run(2, seconds=7.0, reused_from="sweeps/x-test.json"),
                                     run(3, seconds=11.0, reused_from="step3.json"),
                                     run(4, seconds=0.0, reused_from="step3.json", derived_from="r3")])
    assert ("- 4 runs of ≤ 15 epochs, 1 trained here (5 s), 2 reused from earlier records (`reused_from`; 18 s when "
            "they were trained), 1 read from those without their EMA (no training)") in render_result(study)
    assert "- 2 runs of ≤ 15 epochs, 12 s in all" in render_result(
        dict(name="s", runs=[run(1, seconds=5.0), run(2, seconds=7.0)]))
    reused = render_result(dict(name="s", runs=[run(1, reused_from="a.json"), run(2, reused_from="a.json")]))
    assert ("- 2 runs of ≤ 15 epochs, none trained here, 2 reused from earlier records (`reused_from`; 20 s when"
            in reused)


def test_readme_steps_give_each_step_its_result_from_its_record_and_name_a_repeated_table():
    from era_s7.report import readme_steps

    def record(name, model, last5, ema=0.0):
        return dict(name=name, model=model, params=7864, receptive_field=28, epochs=15, seed=1,
                    hyperparameters=dict(ema=ema), total_seconds=1.0,
                    history=([dict(test_acc=98.0, train_acc=99.0)] * 10
                             + [dict(test_acc=a, train_acc=99.0) for a in last5]))

    about = {"step1": ("one", "aim one", "read one"), "step2": ("two", "aim two", "read two")}
    text = readme_steps([("notebooks/step1.ipynb", record("step1", "Model_1", [99.0, 99.5, 99.4, 99.45, 99.5])),
                         ("notebooks/step2.ipynb", record("step2", "Model_2", [99.5] * 5, ema=0.998))],
                        about, {"step1": "TABLE", "step2": "TABLE"})
    assert ("### [Step 1](notebooks/step1.ipynb): one\n\n**Target**: aim one" in text
            and "**Analysis**: read two" in text)
    assert ("**Result** (`results/step1.json`, seed 1): `Model_1`, 7,864 parameters, receptive field 28; last 5 epochs "
            "99.00, 99.50, 99.40, 99.45, 99.50 %: last-5 min **99.00**, mean 99.37; ≥ 99.4 % on **4 of 5**.") in text
    assert "last 5 epochs (of the weight EMA) 99.50, 99.50" in text and "≥ 99.4 % on **5 of 5**" in text
    assert text.count("```\nTABLE\n```") == 1 and "Receptive field, layer by layer: the same table as Step 1's." in text


def test_no_generator_rounds_a_figure_across_a_target():
    """Rounding never changes a verdict: runs whose last-5 means average 99.4996 (and one of 99.498) and whose
    last-5 minima average 99.395, printed by every generator, show no 99.50, 99.500 or 99.40 (issue 42)."""
    from era_s7 import report

    def run(seed, last5, name="x"):
        return dict(name=name, model="Model_3", params=7864, receptive_field=28, epochs=15, seed=seed, split="test",
                    total_seconds=1.0, hyperparameters={}, device="cpu", precision="bf16", torch="2",
                    history=[dict(epoch=i + 1, test_acc=a, train_acc=99.0) for i, a in enumerate([98.0] * 10 + last5)])

    # last-5 means 99.498 (seeds 1-4) and 99.506 (seed 5): mean 99.4996; minima 99.39 (1-3), 99.41 (4, 5): mean 99.398
    a, b, e = [99.39, 99.53, 99.53, 99.53, 99.51], [99.41, 99.53, 99.53, 99.51, 99.51], [99.41] + [99.53] * 4
    runs = [run(1, a), run(2, a), run(3, a), run(4, b), run(5, e)]
    record = dict(name="seeds", runs=runs)
    texts = [report.render_result(record), report.runs_table(runs),
             report.variants_table(runs + [run(1, [99.45] * 5, "y")]),
             report.readme_table([("notebooks/extended/seeds.ipynb", record)], {}), report.headline(record),
             report.last_epochs_table(runs[0]["history"]),
             report.readme_steps([("notebooks/step3.ipynb", dict(runs[0], name="step3"))], {"step3": ("t", "a", "b")},
                                 {"step3": "T"})]
    for text in texts:
        assert not re.search(r"(?<![\d.])99\.(50|500|40|400)(?!\d)", text), text
    from era_s7.assignment import on_side
    assert on_side(99.4996, 3) == "99.4996" and on_side(99.398) == "99.398"
