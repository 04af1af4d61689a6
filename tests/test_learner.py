"""era_s7/learner.py and its command, `python -m era_s7.tools.check`: a learner's class against the assignment, on
tiny models of the test's own and smoke settings (one epoch on 512 images, 500 test images)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from era_s7 import assignment, learner, loader, report, runs
from era_s7.results import REPO_ROOT, RESULTS_DIR, model_source_sha256
from era_s7.tools import notebooks

MODELS = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """786 parameters: two strided convs, GAP, a 1x1 conv to 10."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.BatchNorm2d(8),
                                 nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(), nn.BatchNorm2d(8),
                                 nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 10, 1), nn.Flatten())

    def forward(self, x):
        return self.net(x)


class Big(nn.Module):
    """9,550 parameters: over the limit (a dense layer on the flattened image)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 12), nn.ReLU(), nn.Linear(12, 10))

    def forward(self, x):
        return self.net(x)


class Branchy(Tiny):
    """Python control flow on a tensor's value: torch.fx cannot trace it, so no receptive field; it still trains."""

    def forward(self, x):
        return self.net(x) if x.sum() != 0 else self.net(x) * 2


class NoBuild(nn.Module):
    def __init__(self, width):
        super().__init__()


class TooSmall(nn.Module):
    """Fails on 28x28: its dense layer expects 100 features."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(100, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class FiveWay(Tiny):
    def forward(self, x):
        return self.net(x)[:, :5]


class NotFlat(Tiny):
    def forward(self, x):
        return self.net[:-1](x)  # (n, 10, 1, 1): no flatten
'''


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "learner" / "my_models.py"
    path.parent.mkdir()
    path.write_text(MODELS)
    return path


@pytest.fixture
def smoke(tiny_data, tmp_path):
    """check_model on smoke settings, trained in this process, its record in tmp_path/checks."""
    def run(spec, seeds=(1, 2), **kwargs):
        return learner.check_model(spec, list(seeds), device="cpu", precision="fp32", smoke=True, data=tiny_data,
                                 in_process=True, **{"record_path": tmp_path / "checks" / "c.json", **kwargs})
    return run


def fake_record(last5s, params=7680, epochs=15, test_images=10_000):
    runs = [dict(seed=seed, total_seconds=1.0, history=[dict(epoch=e, test_acc=98.0, train_acc=99.0)
                                                        for e in range(1, epochs - len(last5) + 1)] +
                 [dict(epoch=epochs - len(last5) + i, test_acc=a, train_acc=99.0) for i, a in enumerate(last5, 1)])
            for seed, last5 in enumerate(last5s, 1)]
    return dict(model="Net", params=params, hyperparameters=dict(epochs=epochs), seeds=list(range(1, len(runs) + 1)),
                test_images=test_images, runs=runs)


def test_verdict_in_words_per_rule_with_the_seeds_it_rests_on():
    good = fake_record([[99.45, 99.41, 99.50, 99.48, 99.47], [99.52, 99.50, 99.49, 99.51, 99.50]])
    lines = assignment.verdict(good)
    assert lines[0] == "Verdict: Net passes every rule of the assignment, on seeds 1, 2"
    assert lines[1] == "- fewer than 8,000 parameters: passed: 7,680 trainable parameters, 320 below the limit of 8,000"
    assert lines[2] == "- at most 15 epochs: passed: 15 epochs, at most 15"
    assert lines[3] == ("- ≥ 99.4 % on every one of the last 5 epochs, on every seed: passed: held on 2 of 2 seeds; "
                        "the lowest of the last 5 epochs is 99.41 % (seed 1), 0.01 point above 99.4 %")
    assert assignment.passes(good)

    bad = fake_record([[99.45, 99.37, 99.50, 99.39, 99.47], [99.52] * 5, [99.6] * 5], params=8650, epochs=20)
    lines = assignment.verdict(bad)
    assert lines[0] == ("Verdict: Net fails 3 of 3 rules (fewer than 8,000 parameters; at most 15 epochs; ≥ 99.4 % on "
                        "every one of the last 5 epochs, on every seed), on seeds 1–3")
    assert lines[1].endswith("FAILED: 8,650 trainable parameters: 651 too many (the rule is fewer than 8,000)")
    assert lines[2].endswith("FAILED: 20 epochs: 5 more than the 15 allowed")
    assert lines[3].endswith("FAILED: held on 2 of 3 seeds (2, 3); missed on seed 1: lowest 99.37 %, 0.03 point short "
                             "(3 of the 10,000 test images), below 99.4 on 2 of its last 5")
    assert not assignment.passes(bad)

    partial = dict(good, seeds=[1, 2, 3])  # interrupted: seed 3 not done yet
    assert assignment.verdict(partial)[0].endswith("on seeds 1, 2; 2 of the 3 seeds asked are done (rerun the same "
                                                   "command to resume)")
    assert not assignment.passes(partial)
    assert assignment.images_short(99.37, 10_000) == 3 and assignment.images_short(99.0, 500) == 2
    assert assignment.images_short(99.41, 10_000) == 0


@pytest.mark.parametrize("name, says", [
    ("NoBuild", r"NoBuild fails to build: NoBuild\(\) raised TypeError: .*width.* give every argument of __init__ a "
                r"default"),
    ("TooSmall", r"TooSmall fails on a \(1, 1, 28, 28\) input: RuntimeError: .*shapes cannot be multiplied"),
    ("FiveWay", r"FiveWay gives outputs of shape \(1, 5\) for a \(1, 1, 28, 28\) input, not \(n, 10\) = \(1, 10\)"),
    ("NotFlat", r"NotFlat gives outputs of shape \(1, 10, 1, 1\) for a \(1, 1, 28, 28\) input, not \(n, 10\)"),
    ("Missing", r"my_models.py has no 'Missing'; the torch.nn.Module classes it defines: \['Big', 'Branchy', "),
    ("torch", "torch is a module, not a torch.nn.Module class"),
])
def test_a_model_that_cannot_be_checked_is_refused_before_anything_trains(models, tmp_path, name, says, monkeypatch):
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(loader.ModelRefused, match=says):
        learner.check_model(f"{models}:{name}", [1], device="cpu", smoke=True, data={},
                          record_path=tmp_path / "checks" / "c.json")
    assert not (tmp_path / "checks").exists()  # no record either


def test_a_file_path_and_a_module_path_both_load(models, monkeypatch):
    from_file = loader.load_class(f"{models}:Tiny")
    assert from_file is loader.load_class(f"{models}:Tiny")  # imported once, under a name of its own
    assert loader.class_spec(from_file, Path("unused.py")) == f"{models.resolve()}:Tiny"
    monkeypatch.syspath_prepend(str(models.parent))
    from_module = loader.load_class("my_models:Tiny")
    assert from_module.__module__ == "my_models"
    assert loader.class_spec(from_module, Path("unused.py")) == "my_models:Tiny"
    assert model_source_sha256(from_file) == model_source_sha256(from_module)  # the same code, by either path
    assert learner.default_name(f"{models}:Tiny") == "my_models-Tiny"
    assert learner.default_name("pkg.mod:Net") == "pkg.mod-Net"


def test_tiny_model_on_smoke_settings_record_and_printout(models, smoke, tmp_path, capsys):
    record = smoke(f"{models}:Tiny")
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "checks" / "c.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert record["kind"] == "check" and record["model"] == "Tiny" and record["params"] == 786
    assert [r["seed"] for r in record["runs"]] == [1, 2] and record["seeds"] == [1, 2] and record["test_images"] == 500
    assert record["receptive_field"] == 27 and record["receptive_field_refusal"] is None
    assert record["verdict"] == assignment.verdict(record) and record["passes"] is False
    assert all(r["model_source_sha256"] == record["model_source_sha256"] for r in record["runs"])
    assert "parameters: 786 trainable (fewer than 8,000: within the assignment's limit)" in out
    assert "receptive field at the output: 27 px" in out and "AdaptiveAvgPool2d" in out
    for run in record["runs"]:
        s = assignment.run_summary(run)
        assert f"{s['seed']:>4}  {s['last5'][0]:6.2f}" in out
    assert "hold rate: 0 of 2 seeds (0 %)" in out and "mean of the last-5 means: " in out
    assert "\n".join(record["verdict"]) in out and record["verdict"][0].startswith("Verdict: Tiny fails 1 of 3 rules")
    assert "only 1 epoch trained: the rule needs the last 5" in record["verdict"][3]
    assert f"**{record['verdict'][0]}**" in report.render_result(record)  # a notebook's Result block ends with it


def test_a_record_that_is_not_a_checks_is_left_alone(models, smoke, tmp_path):
    (tmp_path / "checks").mkdir()
    other = tmp_path / "checks" / "c.json"
    other.write_text('{"name": "ema-warmup", "runs": [{"seed": 1}]}')  # like results/checks/ema-warmup.json
    with pytest.raises(ValueError, match="c.json is not a check's record, and is left as it is"):
        smoke(f"{models}:Tiny", seeds=[1])
    assert json.loads(other.read_text())["name"] == "ema-warmup"


def test_a_check_record_is_stale_when_its_class_changed(models, smoke, tmp_path):
    record = smoke(f"{models}:Tiny", seeds=[1])
    path = tmp_path / "checks" / "c.json"
    assert learner.stale_problems(record, path) == []
    models.write_text(MODELS.replace("nn.Conv2d(8, 10, 1)", "nn.Conv2d(8, 10, 1, bias=False)"))
    for name in [n for n in sys.modules if n.startswith("era_s7_check_my_models")]:
        del sys.modules[name]  # a new session: the file imported again
    assert learner.stale_problems(record, path) == [f"c.json: Tiny ({record['model_spec']}) was changed after its "
                                                    "check (source hash differs); run the check again"]


def test_over_the_parameter_limit_fails_that_rule_and_the_rest_still_runs(models, smoke, capsys):
    record = smoke(f"{models}:Big")
    assert record["params"] == 9550 and [r["seed"] for r in record["runs"]] == [1, 2]
    assert "NOT fewer than 8,000: over the assignment's limit; the check still trains it" in capsys.readouterr().out
    assert record["verdict"][1] == ("- fewer than 8,000 parameters: FAILED: 9,550 trainable parameters: 1,551 too "
                                    "many (the rule is fewer than 8,000)")
    assert record["verdict"][2].endswith("passed: 1 epoch, at most 15") and record["receptive_field"] == 28


def test_receptive_field_refused_by_the_tool_is_named_and_the_rest_still_runs(models, smoke, capsys):
    record = smoke(f"{models}:Branchy", seeds=[3])
    out = capsys.readouterr().out
    assert "receptive field: not computed, the tool refused: Branchy cannot be traced by torch.fx" in out
    assert record["receptive_field"] is None and "cannot be traced" in record["receptive_field_refusal"]
    assert [r["seed"] for r in record["runs"]] == [3] and record["runs"][0]["receptive_field"] is None
    assert "(one seed: no spread)" in out and record["verdict"][0].endswith("on seed 3")


def test_a_staged_check_resumes_from_the_committed_record(models, smoke, tmp_path, monkeypatch, capsys):
    """Under `make notebooks` the record is written into an empty staging folder: the committed record of the same
    name stands in, run by run, by the one reuse rule."""
    committed = smoke(f"{models}:Tiny", seeds=[1], record_path=tmp_path / "results" / "c.json")
    monkeypatch.setattr(learner, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setenv(learner.RESULTS_ENV, str(tmp_path / "results" / ".staging-x"))
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("retrained a committed run"))
    capsys.readouterr()
    staged = smoke(f"{models}:Tiny", seeds=[1], record_path=tmp_path / "results" / ".staging-x" / "c.json")
    assert staged["runs"] == committed["runs"]
    assert (f"on disk in {tmp_path / 'results' / 'c.json'}: seed 1, by the same code, recipe and condition: kept"
            in capsys.readouterr().out)


def test_an_interrupted_check_resumes_without_retraining_the_seeds_done(models, smoke, tmp_path, monkeypatch, capsys):
    trained = []
    real = runs.train

    def counted(name, model, data, hp, seed, *args, **kwargs):
        if seed == interrupt_at:
            raise KeyboardInterrupt
        trained.append(seed)
        return real(name, model, data, hp, seed, *args, **kwargs)

    monkeypatch.setattr(runs, "train", counted)
    interrupt_at = 2
    with pytest.raises(KeyboardInterrupt):
        smoke(f"{models}:Tiny", seeds=[1, 2, 3])
    on_disk = json.loads((tmp_path / "checks" / "c.json").read_text())
    assert [r["seed"] for r in on_disk["runs"]] == [1] and "1 of the 3 seeds asked are done" in on_disk["verdict"][0]

    interrupt_at = None
    capsys.readouterr()
    record = smoke(f"{models}:Tiny", seeds=[1, 2, 3])
    assert trained == [1, 2, 3]  # seed 1 once, before the interruption; then only 2 and 3
    assert record["runs"][0] == on_disk["runs"][0] and [r["seed"] for r in record["runs"]] == [1, 2, 3]
    out = capsys.readouterr().out
    assert "c.json: seed 1, by the same code, recipe and condition: kept, not retrained" in out
    assert re.search(r"--- seed 1: a run of the same code, recipe and seed, made on .* with \d+ thread\(s\), is on "
                     r"disk \(.*c\.json\); reused, not retrained\. Its epochs:", out)
    assert out.count("epoch  1/1") == 3  # every run of the record is printed, in order, as the notebooks' tests read
    assert "on seeds 1–3" in record["verdict"][0] and "asked are done" not in record["verdict"][0]

    # another recipe is another check: the runs on disk are replaced, not mixed in
    trained.clear()
    changed = smoke(f"{models}:Tiny", seeds=[1, 2], recipe={"lr": 0.05})
    assert trained == [1, 2] and all(r["hyperparameters"]["lr"] == 0.05 for r in changed["runs"])
    assert "held runs of seeds 1–3 made by other code, recipe or condition, or of seeds not asked now: they are " \
           "replaced" in capsys.readouterr().out


def test_command_line_on_a_file_one_process_per_core_and_its_exit_status(models, tmp_path):
    """The command itself: the seeds trained in pinned one-thread processes, each importing the learner's file."""
    run = subprocess.run([sys.executable, "-m", "era_s7.tools.check", f"{models}:Tiny", "--seeds", "1-2", "--smoke",
                          "--device", "cpu", "--precision", "fp32", "--dir", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert run.returncode == 1, run.stderr  # 1: a rule failed (one epoch cannot hold for 5)
    assert "2 runs to train, " in run.stdout and "one process per core, one thread each" in run.stdout
    assert "Verdict: Tiny fails 1 of 3 rules" in run.stdout
    record = json.loads((tmp_path / "out" / "my_models-Tiny.json").read_text())
    assert [r["seed"] for r in record["runs"]] == [1, 2] and {r["threads"] for r in record["runs"]} == {1}
    assert record["model_spec"] == f"{models.resolve()}:Tiny"

    refused = subprocess.run([sys.executable, "-m", "era_s7.tools.check", f"{models}:FiveWay", "--smoke", "--dir",
                              str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert refused.returncode == 2 and refused.stderr.startswith("refused, nothing trained: FiveWay gives outputs")
    assert not (tmp_path / "out" / "my_models-FiveWay.json").exists()


YOUR_MODEL = REPO_ROOT / "notebooks" / "extended" / "your_model.ipynb"


def test_your_model_notebook_is_registered_outside_the_default_series_and_defaults_to_a_published_plan():
    assert str(YOUR_MODEL.relative_to(REPO_ROOT)) in notebooks.OPTIONAL
    assert str(YOUR_MODEL.relative_to(REPO_ROOT)) not in notebooks.NOTEBOOKS  # make notebooks NB=your_model
    nb = nbformat.read(YOUR_MODEL, as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and "class YourModel" in c.source)
    namespace = {}
    exec(compile(cell, "cell", "exec"), namespace)
    model = loader.probe(namespace["YourModel"])
    from era_s7.receptive_field import receptive_field
    from era_s7.summary import count_parameters
    assert count_parameters(model) == 7680 and receptive_field(model)[1] == 28  # ankode/ERAV1 S7_Model3's plan
    assert "check.check_model(YourModel" in "".join(c.source for c in nb.cells)


@pytest.mark.skipif(not (RESULTS_DIR / "your_model.json").is_file(),
                    reason="the executed your_model notebook is not committed yet (make notebooks NB=your_model)")
def test_committed_your_model_record_is_of_the_notebooks_class_on_five_seeds():
    record = json.loads((RESULTS_DIR / "your_model.json").read_text())
    nb = nbformat.read(YOUR_MODEL, as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and "class YourModel" in c.source)
    saved = (RESULTS_DIR / "your_model.py").read_text()
    assert saved.split("\n", 1)[1].rstrip("\n") == cell.rstrip("\n")  # the cell, as saved beside the record
    cls = loader.load_class(f"{RESULTS_DIR / 'your_model.py'}:YourModel")
    assert record["model_source_sha256"] == model_source_sha256(cls)
    assert learner.stale_problems(record, RESULTS_DIR / "your_model.json") == []
    assert len(record["runs"]) >= 5 and record["seeds"] == [r["seed"] for r in record["runs"]]
    assert record["verdict"] == assignment.verdict(record) and record["hyperparameters"]["epochs"] <= 15
    assert not any(r["hyperparameters"]["train_subset"] for r in record["runs"])  # not a smoke run


def test_readme_says_how_to_check_your_model():
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Does your model pass?", 1)[1].split("\n## ", 1)[0]
    assert "python -m era_s7.tools.check" in section and "make check-model CLASS=" in section
    assert "make notebooks NB=your_model" in section
    assert (readme.index("## The three steps") < readme.index("## Your own digit")
            < readme.index("## Does your model pass?"))
