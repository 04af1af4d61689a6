"""The notebooks: smoke runs under papermill, the committed (executed) ones checked against their results."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from era_s7 import assignment, confirmation, report, results, story
from era_s7.results import REPO_ROOT, RESULTS_DIR
from era_s7.tools import notebooks, stale

STEP_NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("step*.ipynb"))
ALL_NOTEBOOKS = [REPO_ROOT / nb for nb in notebooks.NOTEBOOKS + notebooks.OPTIONAL]
# the executed notebooks, checked against their records: the series', and an optional one once its run is committed
EXECUTED = [REPO_ROOT / nb for nb in notebooks.NOTEBOOKS] + [
    REPO_ROOT / nb for nb in notebooks.OPTIONAL if (RESULTS_DIR / f"{Path(nb).stem}.json").is_file()]
EPOCH_LINE = re.compile(r"^epoch +(\d+)/\d+ +lr (\S+) +train loss (\S+) acc +(\S+)% "
                        r"+test loss (\S+) acc +(\S+)% +(\S+)s$", re.M)


def stdout_of(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def test_exactly_three_step_notebooks():
    assert [p.name for p in STEP_NOTEBOOKS] == ["step1.ipynb", "step2.ipynb", "step3.ipynb"]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_smoke_run_end_to_end(path, tmp_path):
    """Every cell runs, offline and on the CPU, with the tiny `smoke` settings."""
    import papermill

    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out),
                               parameters=dict(smoke=True, results_dir=str(tmp_path), device="cpu"),
                               kernel_name="python3", cwd=str(path.parent), progress_bar=False)
    record = results.load_record(tmp_path / f"{path.stem}.json")
    assert set(record) >= {"name", "history"} or "runs" in record
    assert sorted(p.name for p in (tmp_path / "figures" / path.stem).glob("*.png"))


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_committed_notebook_matches_its_results(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    record = results.load_record(RESULTS_DIR / f"{path.stem}.json")
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for heading in ("**Target**", "**Result**", "**Analysis**"):
        assert heading in first.source
    assert report.render_result(record) in first.source  # the Result block is what the JSON says
    assert "written after reading the Result" not in first.source  # the Analysis has been written
    printed = [tuple(map(float, m.groups())) for m in EPOCH_LINE.finditer(stdout_of(nb))]
    runs = assignment.runs_of(record)
    # a run read from another without its EMA (results.without_ema) trained nothing and printed no epochs of its own;
    # the run it was read from must be in the record
    assert all(run["derived_from"] in {r["name"] for r in runs} for run in runs if "derived_from" in run)
    expected = [(r["epoch"], r["lr"], r["train_loss"], r["train_acc"], r["test_loss"], r["test_acc"], r["seconds"])
                for run in runs if "derived_from" not in run for r in run["history"]]
    assert len(printed) == len(expected) > 0
    for p, e in zip(printed, expected):  # printed to 2-5 decimals, seconds to 1
        assert p[:-1] == pytest.approx(e[:-1], abs=6e-3) and p[-1] == pytest.approx(e[-1], abs=0.051), (p, e)


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_renders_on_github(path, tmp_path):
    raw = path.read_text()
    nb = nbformat.reads(raw, as_version=4)
    assert len(raw.encode()) < 2_000_000
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    assert not any("papermill" in c.metadata or "execution" in c.metadata for c in nb.cells)
    for c in nb.cells:
        for o in c.get("outputs", []):
            assert o.output_type != "error"
            assert not any(k.startswith("application/vnd.jupyter.widget") for k in o.get("data", {}))
            assert not any(k in o.get("data", {}) for k in ("image/svg+xml", "image/jpeg"))
    for machine_path in (str(REPO_ROOT), "/root/", "/home/", "/tmp/"):
        assert machine_path not in raw, f"{path.name} shows the machine path {machine_path}"
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--output-dir", str(tmp_path), str(path)],
                   check=True, capture_output=True)


def test_step3_keeps_the_rules_and_the_readme_states_the_measured_hold_rate():
    """The budget is a rule of the assignment (a test); holding 99.4 % is a measured outcome, which the front
    page must state as measured, on the seeds study's seeds, never more."""
    record = results.load_record(RESULTS_DIR / "step3.json")
    assert record["model"] == "Model_3" and record["params"] < 8000 and record["epochs"] <= 15
    assert record["receptive_field"] >= 28 and len(assignment.last_accuracies(record)) == 5
    held, n = assignment.held_count(results.load_record(RESULTS_DIR / "seeds.json"))
    # 11: the seeds study that fits make notebooks' 81-minute limit on 2 cores (research log); a smoke run has fewer
    assert n >= 11 and (f"on every one of its last 5 epochs on {held} of {n} seeds**"
                        in (REPO_ROOT / "README.md").read_text())


def test_results_were_produced_by_the_committed_model_code():
    assert stale.stale_records() == []


def test_readme_table_matches_the_results():
    steps, studies = notebooks.readme_rows()
    assert [Path(nb).stem for nb, _ in steps] == ["step1", "step2", "step3"] and len(studies) == 3
    readme = (REPO_ROOT / "README.md").read_text()
    assert report.readme_steps(steps, story.STEP_PROSE, notebooks.rf_tables(steps)) in readme
    assert report.readme_table(studies, story.STUDIES) in readme
    assert report.headline(results.load_record(RESULTS_DIR / "seeds.json"), RESULTS_DIR) in readme
    # the steps come first, then how often step 3 holds, then the tools, then the two commands
    order = [readme.index(s) for s in (report.STEPS_START, report.HEADLINE_START, "## Your own digit",
                                       "## Does your model pass?", "## Two commands")]
    assert order == sorted(order)


def test_readme_is_short_and_its_step_texts_quote_only_the_records():
    """A grader's first page: at most 1,500 words (counted as the hand-in hook counts them: comments and link
    targets aside); the hand-written Target and Analysis lines of the steps quote only numbers of the records."""
    text = (REPO_ROOT / "README.md").read_text()
    assert len(re.sub(r"<!--.*?-->|\(http[^)]*\)", " ", text, flags=re.S).split()) <= 1500
    records = [results.load_record(p) for p in sorted(RESULTS_DIR.glob("*.json"))]
    known = numbers_in_results([r for r in records if "history" in r or "runs" in r])
    quoted = [q.lstrip("-") for _, target, analysis in story.STEP_PROSE.values()
              for q in re.findall(NUMBER, target + " " + analysis)]
    assert quoted and not [q for q in quoted if q not in known], [q for q in quoted if q not in known]


def failing_notebook(path: Path) -> Path:
    """A notebook that stages a result, then fails in its second cell."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os, pathlib\n"
                                  "pathlib.Path(os.environ['ERA_S7_RESULTS_DIR'], 'demo.json').write_text('{}')"),
        nbformat.v4.new_code_cell("raise RuntimeError('boom')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


def test_failing_cell_leaves_committed_notebook_and_results_unchanged(tmp_path):
    nb_path = failing_notebook(tmp_path / "demo.ipynb")
    before = nb_path.read_bytes()
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "demo.json").write_text('{"old": true}')
    with pytest.raises(notebooks.NotebookFailed, match=r"demo.ipynb failed in cell 1 .*RuntimeError: boom"):
        notebooks.execute(nb_path, results_dir)
    assert nb_path.read_bytes() == before
    assert json.loads((results_dir / "demo.json").read_text()) == {"old": True}
    assert sorted(p.name for p in results_dir.iterdir()) == ["demo.json"]  # no staging or temp files left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.ipynb", "results"]


def test_parallel_runner_pins_each_notebook_and_runs_the_steps_first(tmp_path, capsys):
    """`make notebooks` with JOBS > 1: the step notebooks one process per core, pinned to it; the extended
    notebooks only after every step notebook ended (they reuse step 3's run), one at a time in their order, each
    given every core; a failure is returned and stops the next wave."""
    log = tmp_path / "log"
    script = ("import os, sys, time; name, log = sys.argv[1], sys.argv[2]; "
              "open(log, 'a').write(f'start {name} {sorted(os.sched_getaffinity(0))}\\n'); time.sleep(0.3); "
              "open(log, 'a').write(f'end {name}\\n'); sys.exit(3 if name == 'step2' else 0)")

    def command(nb):
        return [sys.executable, "-c", script, Path(nb).stem, str(log)]

    cores = sorted(os.sched_getaffinity(0))[:2]
    timings = {}
    assert notebooks.run_pinned(["notebooks/step1.ipynb", "notebooks/step3.ipynb"] + notebooks.NOTEBOOKS[3:],
                                cores, command, timings) == 0
    assert sorted(timings) == sorted(["notebooks/step1.ipynb", "notebooks/step3.ipynb"] + notebooks.NOTEBOOKS[3:])
    assert all(0.3 <= s < 30 for s in timings.values())
    printed = capsys.readouterr().out
    assert printed.count("] started ") == 5 and printed.count("] finished ") == 5 and "min left" in printed
    events = log.read_text().splitlines()
    starts = [e for e in events if e.startswith("start")]
    assert len(starts) == 5
    assert all(e.split(" ", 2)[2] in {str([c]) for c in cores} for e in starts if "step" in e)  # each on one core
    assert all(e.split(" ", 2)[2] == str(cores) for e in starts if "step" not in e)  # each on every core
    extended = [e for e in events if "step" not in e]
    assert extended == [f"{kind} {Path(nb).stem}" + (f" {cores}" if kind == "start" else "")
                        for nb in notebooks.NOTEBOOKS[3:] for kind in ("start", "end")]  # one at a time, in order
    last_step_end = max(i for i, e in enumerate(events) if e.startswith("end step"))
    first_extended = min(i for i, e in enumerate(events) if e.startswith("start") and "step" not in e)
    assert last_step_end < first_extended
    log.unlink()
    assert notebooks.run_pinned(notebooks.NOTEBOOKS, cores, command) == 3  # step2 fails ...
    assert "seeds" not in log.read_text()  # ... so no extended notebook ran


def setup_cell(path):
    return nbformat.read(path, as_version=4).cells[2].source


def colab_kernel(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A Jupyter kernel "colab" whose Python has every dependency (this environment's, seen through a .pth file)
    but not era_s7, offline (pip can fetch nothing), and Colab's working folder with no era_s7 above it: returns
    (the kernel's site-packages, the working folder)."""
    import sysconfig

    colab = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(colab)], check=True)
    site_packages = Path(subprocess.run([colab / "bin" / "python", "-c",
                                         "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        check=True, capture_output=True, text=True).stdout.strip())
    (site_packages / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    kernel = tmp_path / "jupyter" / "kernels" / "colab"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({"argv": [str(colab / "bin" / "python"), "-m", "ipykernel_launcher",
                                                             "-f", "{connection_file}"], "display_name": "colab",
                                                    "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: every dependency is installed already
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # pip's spelling of "build with the setuptools installed"
    work = tmp_path / "content"
    work.mkdir()
    return site_packages, work


def run_cells(sources: list[str], work: Path):
    """Runs the cells in the "colab" kernel from `work`: (the executed notebook, the error that stopped it or None)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    try:
        NotebookClient(nb, kernel_name="colab", resources={"metadata": {"path": str(work)}}).execute()
    except CellExecutionError as error:
        return nb, error
    return nb, None


def test_setup_cell_installs_the_package_once_and_survives_a_rerun_and_a_restart(tmp_path, monkeypatch):
    """Where era_s7 is not installed (Colab), the set-up cell clones the repository and installs it (pip install -e)
    into the kernel's Python, keeping the runtime's own torch and every other package already there (offline:
    pip could fetch nothing); running the cell twice, or Colab's "Restart runtime", must find that install
    instead of cloning again."""
    origin = tmp_path / "origin"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(origin)], check=True)
    site_packages, work = colab_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("ERA_S7_REPO", str(origin))
    parameters, setup = (nbformat.read(STEP_NOTEBOOKS[0], as_version=4).cells[i].source for i in (1, 2))
    for _ in range(2):  # two sessions (a restart), the second running the cell twice
        nb, error = run_cells([parameters] + [setup] * (_ + 1) + ["print(utils.__file__)"], work)
        assert error is None, stdout_of(nb)
        printed = stdout_of(nb).strip().splitlines()
        assert printed[-1] == str(work / "era-s7" / "era_s7" / "utils.py")
        installs = [line for line in printed if line.startswith("era_s7 installed from")]
        assert len(installs) == (1 if _ == 0 else 0)  # the second session finds the install
        assert all("torch==" in line for line in installs)  # the runtime's torch kept, by name
    assert sorted(p.name for p in work.iterdir()) == ["era-s7"]
    assert list(site_packages.glob("__editable__.era_s7-*.pth"))  # installed, not put on sys.path
    added = [p.name for p in site_packages.iterdir() if "era_s7" not in p.name]
    assert sorted(added) in (["dependencies.pth"], ["__pycache__", "dependencies.pth"])  # era_s7 alone: all else kept
    assert 'scripts" / "runtime_setup.py"' in setup


def test_setup_cell_offline_outside_a_clone_says_what_failed_and_the_fix_in_one_line(tmp_path, monkeypatch):
    """Kaggle starts a notebook without internet: where the clone fails, the cell stops with one line (what
    failed, the fix), not git's message and a traceback, and leaves nothing behind (shared/cases/colab_runtime.md)."""
    _, work = colab_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("ERA_S7_REPO", str(tmp_path / "unreachable" / "era-s7"))
    parameters, setup = (nbformat.read(STEP_NOTEBOOKS[0], as_version=4).cells[i].source for i in (1, 2))
    nb, error = run_cells([parameters, setup], work)
    assert error is not None and error.ename == "SystemExit"
    assert "cannot clone" in error.evalue and "switch Internet on" in error.evalue
    assert "ERA_S7_REPO" in error.evalue and "\n" not in error.evalue
    streams = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "fatal:" not in streams  # git's own message is not shown
    assert list(work.iterdir()) == []


def test_setup_cell_on_a_runtime_with_a_too_old_torch_names_it_and_installs_nothing(tmp_path, monkeypatch):
    """A runtime whose torch lies below era_s7's floor: the cell names the package, the runtime's version, the range
    needed and the one command that fixes it, and installs nothing."""
    site_packages, work = colab_kernel(tmp_path, monkeypatch)
    old = site_packages / "torch-1.13.1+cu117.dist-info"  # found before the real one: the kernel's sys.path order
    old.mkdir()
    (old / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 1.13.1+cu117\n")
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(work / "era-s7")], check=True)
    parameters, setup = (nbformat.read(STEP_NOTEBOOKS[0], as_version=4).cells[i].source for i in (1, 2))
    nb, error = run_cells([parameters, setup], work)
    assert error is not None and error.ename == "SystemExit"
    printed = stdout_of(nb)
    floor = re.search(r'"torch(>=[^"]+)"', (REPO_ROOT / "pyproject.toml").read_text()).group(1)
    assert f"error: this runtime has torch 1.13.1+cu117; era_s7 needs torch{floor}" in printed
    assert f'fix: %pip install "torch{floor}" torchvision' in printed and "nothing was installed" in printed
    assert not list(site_packages.glob("*era_s7*")) and not list(site_packages.glob("*era-s7*"))


def test_every_notebook_has_the_same_setup_cell_and_a_colab_badge():
    setups = {setup_cell(p).split("%matplotlib inline")[0] for p in ALL_NOTEBOOKS}
    assert len(setups) == 1 and f"https://github.com/{notebooks.GITHUB_REPO}" in setups.pop()
    for path in ALL_NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0].source
        assert notebooks.colab_badge(str(path.relative_to(REPO_ROOT))) in first


def test_full_run_is_recorded(tmp_path):
    path = notebooks.record_full_run({"notebooks/step1.ipynb": 61.25, "notebooks/extended/seeds.ipynb": 300.0},
                                     400.0, 2, tmp_path / "make-notebooks.json")
    record = json.loads(path.read_text())
    assert record["total_seconds"] == 400.0 and record["jobs"] == 2
    assert record["seconds"] == {"step1": 61.2, "seeds": 300.0}
    assert record["device_name"] not in ("", "cpu") and "commit" in record


def test_make_log_keeps_cell_output_and_drops_papermill_noise():
    import logging
    keep = notebooks.CellOutputOnly().filter

    def passes(message):
        return keep(logging.LogRecord("papermill", logging.INFO, "", 0, message, None, None))

    assert passes("epoch  3/15  lr 0.09  train loss 0.5 acc 98.00%  test loss 0.4 acc 99.00%  20.1s")
    assert passes("MNIST: repaired t10k-labels-idx1-ubyte: md5 was 1, now 2 as expected, replaced from wheel")
    for noise in ("Executing Cell 12---------------------------------------", "Ending Cell 3------",
                  "<Figure size 1900x400 with 4 Axes>", "Input Notebook:  /x/step1.ipynb",
                  "Executing notebook with kernel: python3"):
        assert not passes(noise)


@pytest.mark.parametrize("path", STEP_NOTEBOOKS, ids=lambda p: p.stem)
def test_step_opening_cell_is_short(path):
    """Target, Result and Analysis at a glance: process notes belong in docs/, not in the opening cell."""
    assert len(nbformat.read(path, as_version=4).cells[0].source) <= 2500


def numbers_in_results(records: list[dict]) -> set[str]:
    """Every number an Analysis may quote, as printed (1-4 decimals): those of the generated Result blocks, the
    runs' per-epoch metrics, the spread between any two epochs' test accuracy, each run's last-5 summary, the
    studies' mean, std and standard error over seeds, the recipes' values, the target, and label smoothing's floor
    of the loss."""
    import math
    import statistics

    def printed(x):
        return {f"{x:.{d}f}" for d in (1, 2, 3, 4)}

    values = printed(assignment.TARGET)
    for record in records:
        values |= {n.lstrip("-") for n in re.findall(NUMBER, report.render_result(record))}
        runs = assignment.runs_of(record)
        summaries = [assignment.run_summary(r) for r in runs]
        for run, summary in zip(runs, summaries):
            accs = [row["test_acc"] for row in run["history"]]
            for row in run["history"]:
                for key in ("train_loss", "train_acc", "test_loss", "test_acc", "raw_test_acc", "seconds"):
                    values |= printed(row[key]) if key in row else set()
            for a in accs:
                for b in accs:
                    values |= printed(abs(a - b))
            values |= printed(summary["last5_mean"]) | printed(summary["last5_min"])
            values |= set().union(*(printed(v) for v in run["hyperparameters"].values() if isinstance(v, float)))
            eps = run["hyperparameters"].get("label_smoothing") or 0.0
            if eps:  # cross-entropy against the smoothed targets, at its minimum
                p_true, p_other = 1 - eps + eps / 10, eps / 10
                values |= printed(-(p_true * math.log(p_true) + 9 * p_other * math.log(p_other)))
        means = [s["last5_mean"] for s in summaries]
        if len(means) > 1:
            spread = statistics.stdev(means)
            values |= printed(statistics.mean(means)) | printed(spread) | printed(spread / math.sqrt(len(means)))
    return values


def per_class_accuracies(name: str) -> set[str]:
    """The per-class test accuracies (%, to 1 decimal, as the confusion figure prints them) of a step's committed
    weights, results/<name>.pt, recomputed on the test set (empty for a study, which commits no weights)."""
    from era_s7.data import load_mnist
    from era_s7.model import make_model
    from era_s7.plots import confusion_matrix
    from era_s7.training import predict

    if not (RESULTS_DIR / f"{name}.pt").is_file():
        return set()
    model = results.load_weights(make_model(results.load_record(RESULTS_DIR / f"{name}.json")["model"], seed=1,
                                            device="cpu"), RESULTS_DIR / f"{name}.pt")
    data = load_mnist(device="cpu")
    cm = confusion_matrix(data["y_test"], predict(model, data["x_test"]).argmax(1))
    return {f"{100 * float(cm[i, i]) / float(cm[i].sum()):.1f}" for i in range(10)}


NUMBER = r"(?<![\w.])-?\d+\.\d+"


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_every_number_in_an_analysis_comes_from_the_results(path):
    """An Analysis quotes the runs; it does not type numbers of its own (a typo, or a number left from an
    older run, fails here). Its generated sentence on the arithmetics is checked against its generator below."""
    analysis = nbformat.read(path, as_version=4).cells[0].source.split("**Analysis**", 1)[1]
    analysis = re.sub(re.escape(report.ARITHMETICS_START) + ".*?" + re.escape(report.ARITHMETICS_END), "", analysis,
                      flags=re.S)
    records = [results.load_record(p) for p in sorted(RESULTS_DIR.glob("*.json"))]
    # and the sweep files a study reused runs from (the search's test-set confirmation): whole records too
    reused = {p for r in records if "runs" in r for p in report.reused_sweeps(r)}
    records += [results.load_record(RESULTS_DIR / p) for p in sorted(reused)]
    known = numbers_in_results([r for r in records if "history" in r or "runs" in r]) | per_class_accuracies(path.stem)
    quoted = [q.lstrip("-") for q in re.findall(NUMBER, analysis)]
    assert quoted and not [q for q in quoted if q not in known], [q for q in quoted if q not in known]


@pytest.mark.parametrize("path", [REPO_ROOT / "notebooks" / "step3.ipynb",
                                  REPO_ROOT / "notebooks" / "extended" / "seeds.ipynb"],
                         ids=lambda p: p.stem)
def test_step3_and_the_seeds_study_state_both_arithmetics(path):
    """Step 3's Analysis and the seeds study's carry the generated sentence on every arithmetic the search confirmed
    the model and recipe in (bf16 on a CPU, fp32 on a GPU), as the sweep files say it today."""
    source = nbformat.read(path, as_version=4).cells[0].source
    record = results.load_record(RESULTS_DIR / f"{path.stem}.json")
    said = confirmation.arithmetics_sentence(assignment.runs_of(record)[0], RESULTS_DIR / "sweeps")
    assert "fp32 GPU" in said and "bf16 CPU" in said
    assert f"{report.ARITHMETICS_START}\n- {said}\n{report.ARITHMETICS_END}" in source.split("**Analysis**", 1)[1]
