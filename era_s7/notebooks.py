"""`make notebooks`: execute the notebooks headlessly, replacing each committed one only when its run succeeds.

A notebook runs with papermill (kernel python3, cwd its folder) into a temporary file, and writes its results
into a staging folder (ERA_S7_RESULTS_DIR). Only when every cell succeeded are the staged results moved into
results/, the notebook's Result block regenerated from its JSON, papermill's timestamps stripped, and the
notebook renamed over the committed one. Then the README's results table is regenerated from results/*.json.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from . import report
from .data import atomic_write_bytes
from .results import REPO_ROOT, RESULTS_DIR, load_record
from .training import usable_cores

NOTEBOOKS = ["notebooks/step1.ipynb", "notebooks/step2.ipynb", "notebooks/step3.ipynb",
             "notebooks/extended/seeds.ipynb", "notebooks/extended/golf.ipynb", "notebooks/extended/ablation.ipynb"]
RESULTS_ENV = "ERA_S7_RESULTS_DIR"
# The README's table: notebook -> (what changed, or what is asked; the target and why, or how).
ABOUT = {
    "step1": ("the skeleton: five 3×3 convs, one max-pool at RF 5, GAP and a 1×1 head; plain SGD, nothing else",
              "≥ 98.8 %: get the structure and the budget right before tuning anything"),
    "step2": ("BatchNorm after every conv, channel dropout 0.05", "≥ 99.3 %: step 1 spent its first epoch finding "
              "the layers' scale"),
    "step3": ("rotation ±8°, dropout out, one-cycle lr, weight EMA, label smoothing 0.1",
              "≥ 99.4 % on all of the last 5 epochs: step 2 jittered at a constant lr, below 99.4"),
    "seeds": ("is step 3's seed lucky?", "step 3's recipe on more seeds"),
    "golf": ("how small can it be?", "step 3's plan, every conv narrower, < 4,000 parameters"),
    "ablation": ("what is each ingredient worth?", "step 3 with one ingredient removed at a time"),
}
GITHUB_REPO = "era-s7/era-s7"  # owner/name on GitHub: the set-up cells clone it, the Colab badges open it


def colab_badge(notebook: str) -> str:
    """Markdown: an Open-in-Colab badge for a notebook path relative to the repository, and the Kaggle caveat."""
    url = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/{notebook}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url}) "
            "(on Kaggle: switch Internet on in the notebook's settings; the set-up cell clones the repository)")


class NotebookFailed(RuntimeError):
    pass


def clean_metadata(nb) -> None:
    """Drop what changes on every run or does not render on GitHub: timestamps, paths, widget state."""
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in ("papermill", "execution", "widgets"):
            cell.metadata.pop(key, None)
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)


def set_result_block(nb, record: dict) -> None:
    """Rewrite the Result part of the first (Target/Result/Analysis) cell from the run's record."""
    start = report.RESULT_START.format(name=record["name"])
    nb.cells[0].source = report.replace_between(nb.cells[0].source, start, report.RESULT_END,
                                                report.render_result(record))


def write_notebook(nb, path: Path) -> None:
    atomic_write_bytes(path, (nbformat.writes(nb) + "\n").encode())  # as nbformat.write ends a file


def remove_leftovers(results_dir: Path, notebook: Path) -> None:
    """What a killed run of this notebook left behind: its staging folders and its half-executed notebook.
    (Other notebooks' staging folders may belong to runs in progress: they are left alone.)"""
    for staging in results_dir.glob(f".staging-{notebook.stem}-*"):
        shutil.rmtree(staging, ignore_errors=True)
    notebook.with_name(f".{notebook.stem}.running.ipynb").unlink(missing_ok=True)


def execute(notebook: Path, results_dir: Path = RESULTS_DIR, parameters: dict | None = None) -> float:
    """Run one notebook; on success replace it and move its results in. Returns seconds taken."""
    import papermill

    results_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(results_dir, notebook)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{notebook.stem}-", dir=results_dir))
    running = notebook.with_name(f".{notebook.stem}.running.ipynb")
    start = time.perf_counter()
    os.environ[RESULTS_ENV] = str(staging)
    try:
        try:
            papermill.execute_notebook(str(notebook), str(running), parameters=parameters or {},
                                       kernel_name="python3", cwd=str(notebook.parent), progress_bar=False,
                                       log_output=True)
        except papermill.PapermillExecutionError as err:
            raise NotebookFailed(f"{notebook} failed in cell {err.cell_index} (execution count {err.exec_count}): "
                                 f"{err.ename}: {err.evalue}. The committed notebook and results are unchanged.") from None
        nb = nbformat.read(running, as_version=4)
        clean_metadata(nb)
        record_path = staging / f"{notebook.stem}.json"
        if not record_path.is_file():
            raise NotebookFailed(f"{notebook} ran but wrote no {record_path.name}; the committed notebook is unchanged.")
        set_result_block(nb, load_record(record_path))
        for staged in sorted(p for p in staging.rglob("*") if p.is_file()):
            target = results_dir / staged.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
        write_notebook(nb, notebook)
    finally:
        os.environ.pop(RESULTS_ENV, None)
        running.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return time.perf_counter() - start


def refresh_result_block(notebook: Path, results_dir: Path = RESULTS_DIR) -> None:
    """Regenerate an executed notebook's Result block from its committed results JSON (outputs untouched)."""
    nb = nbformat.read(notebook, as_version=4)
    set_result_block(nb, load_record(results_dir / f"{notebook.stem}.json"))
    write_notebook(nb, notebook)


def update_readme(readme: Path = REPO_ROOT / "README.md", results_dir: Path = RESULTS_DIR) -> None:
    rows = [(nb, load_record(results_dir / f"{Path(nb).stem}.json")) for nb in NOTEBOOKS
            if (results_dir / f"{Path(nb).stem}.json").is_file()]
    text = report.replace_between(readme.read_text(), report.README_START, report.README_END, report.readme_table(rows, ABOUT))
    atomic_write_bytes(readme, text.encode())


def recorded_seconds(notebook: str, results_dir: Path = RESULTS_DIR) -> float:
    """How long the notebook's last recorded run took (0 when it has none): the best guess of the next."""
    path = results_dir / f"{Path(notebook).stem}.json"
    return sum(r["total_seconds"] for r in report.runs_of(load_record(path))) if path.is_file() else 0.0


def notebook_command(notebook: str) -> list[str]:
    return [sys.executable, "-m", "era_s7.notebooks", Path(notebook).stem]


def run_pinned(notebooks: list[str], cores: list[int], command=notebook_command) -> int:
    """Run notebooks as separate processes, one per core, each pinned to its core (so one thread each).

    On 2 cores, two one-thread trainings side by side get through more images than one two-thread
    training (README, performance). The step notebooks go first: the extended ones reuse step 3's run.
    Within a wave the longest (by its last recorded time) starts first, so that the cores finish together.
    Each child replaces its own notebook and results; returns the first non-zero exit code, else 0."""
    waves = [[nb for nb in notebooks if "extended" not in nb], [nb for nb in notebooks if "extended" in nb]]
    for wave in waves:
        pending, running, failed = sorted(wave, key=recorded_seconds, reverse=True), {}, 0
        while pending or running:
            for core in [c for c in cores if c not in running][:len(pending)]:
                nb = pending.pop(0)
                print(f"running {nb} on core {core} ...", flush=True)
                running[core] = subprocess.Popen(command(nb), preexec_fn=lambda core=core: os.sched_setaffinity(0, {core}))
            pid, status = os.wait()  # until one child ends
            core = next(c for c, proc in running.items() if proc.pid == pid)
            running.pop(core).returncode = code = os.waitstatus_to_exitcode(status)
            failed = failed or code
        if failed:
            return failed
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook stems to run (default: all), e.g. step3 seeds")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: regenerate the Result blocks and the README table from results/*.json")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks at once, each pinned to its own core; 0: one per usable core")
    args = parser.parse_args(argv)
    chosen = [nb for nb in NOTEBOOKS if not args.names or Path(nb).stem in args.names]
    unknown = set(args.names) - {Path(nb).stem for nb in NOTEBOOKS}
    if unknown:
        print(f"error: unknown notebook(s) {sorted(unknown)}; known: {[Path(nb).stem for nb in NOTEBOOKS]}", file=sys.stderr)
        return 2
    if args.report:
        chosen = [nb for nb in chosen if (RESULTS_DIR / f"{Path(nb).stem}.json").is_file()]
        for nb in chosen:
            refresh_result_block(REPO_ROOT / nb)
        update_readme()
        print(f"report: {len(chosen)} Result blocks and the README table regenerated from results/")
        return 0
    cores = usable_cores()[:args.jobs or None]
    if len(cores) > 1 and len(chosen) > 1:
        start = time.perf_counter()
        code = run_pinned(chosen, cores)
        update_readme()
        seconds = time.perf_counter() - start
        print(f"notebooks: {len(chosen)} run on {len(cores)} cores in {seconds:.0f} s ({seconds / 60:.1f} min)")
        return code
    logging.getLogger("papermill").setLevel(logging.INFO)  # the cells' output, epoch lines included, in this log
    total = 0.0
    for nb in chosen:
        # each line names its notebook: with --jobs, several notebooks write to one log
        logging.basicConfig(format=f"    {Path(nb).stem}: %(message)s", force=True)
        print(f"running {nb} ...", flush=True)
        try:
            seconds = execute(REPO_ROOT / nb)
        except NotebookFailed as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        total += seconds
        print(f"  {nb}: {seconds:.0f} s", flush=True)
    update_readme()
    print(f"notebooks: {len(chosen)} run in {total:.0f} s ({total / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
