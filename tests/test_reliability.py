"""Failures are loud, clear and harmless: bad parameters, missing data, a run killed half-way."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest

from era_s7 import data
from era_s7.model import make_model
from era_s7.results import REPO_ROOT
from era_s7.tools import notebooks


def test_unknown_model_name_is_named():
    with pytest.raises(ValueError, match=r"model='Model_9' is not known; allowed: \['Model_1', 'Model_2', 'Model_3'"):
        make_model("Model_9")


@pytest.mark.parametrize("parameters, message", [
    (dict(epochs=0), "epochs=0 is not allowed: epochs must be a whole number >= 1"),
    (dict(device="tpu"), "device='tpu' is not allowed: device must be 'auto'"),
    (dict(seed="abc"), "seed='abc' is not allowed: seed must be a whole number >= 0"),  # not torch's "invalid literal"
])
def test_notebook_rejects_bad_parameters_before_training(parameters, message, tmp_path):
    import papermill

    out = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="ParameterError"):
        papermill.execute_notebook(str(REPO_ROOT / "notebooks/step1.ipynb"), str(out), kernel_name="python3",
                                   parameters=dict(parameters, smoke=True, results_dir=str(tmp_path)),
                                   cwd=str(REPO_ROOT / "notebooks"), progress_bar=False)
    text = out.read_text()
    assert message in text
    assert "epoch  1/" not in text and not list(tmp_path.glob("*.json"))  # nothing trained, nothing written


def test_data_command_fails_loudly_without_any_source(monkeypatch, capsys):
    def nothing_reachable(*args, **kwargs):
        raise data.DataError("could not obtain verified MNIST. Sources tried: ...")

    monkeypatch.setattr(data, "ensure_mnist", nothing_reachable)
    assert data.main() == 1
    assert "could not obtain verified MNIST" in capsys.readouterr().err


def test_run_killed_half_way_leaves_previous_results(tmp_path):
    """Kill `make notebooks` while a notebook is running: the committed notebook and results stay as they were."""
    nb_path = tmp_path / "demo.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os, pathlib, time\n"
                                  "pathlib.Path(os.environ['ERA_S7_RESULTS_DIR'], 'demo.json')"
                                  ".write_text('{\"new\": 1}')\n"
                                  "time.sleep(120)")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), nb_path)
    before = nb_path.read_bytes()
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "demo.json").write_text('{"old": 1}')
    script = textwrap.dedent(f"""
        from pathlib import Path
        from era_s7.tools import notebooks
        notebooks.execute(Path({str(nb_path)!r}), Path({str(results_dir)!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, start_new_session=True)
    try:
        deadline = time.time() + 90
        while not list(results_dir.glob(".staging-*/demo.json")) and time.time() < deadline:
            time.sleep(0.5)
        assert list(results_dir.glob(".staging-*/demo.json")), "the notebook never started"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, mid-run
        proc.wait()
    assert nb_path.read_bytes() == before
    assert (results_dir / "demo.json").read_text() == '{"old": 1}'
    # the next run of this notebook sweeps what the killed one left behind, and nothing of another notebook's run
    (results_dir / ".staging-other-abc").mkdir()
    notebooks.remove_leftovers(results_dir, nb_path)
    assert sorted(p.name for p in results_dir.iterdir()) == [".staging-other-abc", "demo.json"]
    (results_dir / ".staging-other-abc").rmdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.ipynb", "results"]
