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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import torch
from jupyter_client.manager import AsyncKernelManager
from traitlets import CaselessStrEnum, default

from .. import assignment, confirmation, report
from ..data import atomic_write_bytes
from ..machine import device_name, usable_cores
from ..results import REPO_ROOT, RESULTS_DIR, RESULTS_ENV, git_commit, load_record, save_json
from ..story import STEP_PROSE, STUDIES

NOTEBOOKS = ["notebooks/step1.ipynb", "notebooks/step2.ipynb", "notebooks/step3.ipynb",
             "notebooks/extended/seeds.ipynb", "notebooks/extended/golf.ipynb", "notebooks/extended/ablation.ipynb"]
# Run by name only (`make notebooks NB=your_model`), not by a plain `make notebooks`: what the series' time limit
# on a 2-core CPU leaves out (5 seeds x 15 epochs of a published plan, about 40 core-minutes).
OPTIONAL = ["notebooks/extended/your_model.ipynb"]
GITHUB_REPO = "era-s7/era-s7"  # owner/name on GitHub: the set-up cells clone it, the Colab badges open it


def colab_badge(notebook: str) -> str:
    """Markdown: an Open-in-Colab badge for a notebook path relative to the repository, and the Kaggle caveat."""
    url = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/{notebook}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url}) "
            "(on Kaggle: switch Internet on in the notebook's settings; the set-up cell clones the repository)")


class NotebookFailed(RuntimeError):
    pass


class IPCKernelManager(AsyncKernelManager):
    """A kernel reached over local sockets instead of TCP: nothing to encrypt, so no warning in every log.
    The sockets live in the system's temporary folder, so that a killed run leaves none beside the notebooks."""
    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    @default("ip")
    def _ipc_path(self) -> str:
        return os.path.join(tempfile.gettempdir(), f"era-s7-kernel-{os.getpid()}-{id(self)}-ipc")


class CellOutputOnly(logging.Filter):
    """The make log keeps what the cells print (the epoch lines) and drops papermill's per-cell banners,
    its start-up lines and the reprs of figures that were saved as PNG anyway."""
    NOISE = re.compile(r"(Executing Cell \d+-*|Ending Cell \d+-*|<Figure size [^>]*>|Executing notebook with kernel:.*|"
                       r"Input Notebook:.*|Output Notebook:.*|Working directory:.*)")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.NOISE.fullmatch(record.getMessage().strip())


def clean_metadata(nb) -> None:
    """Drop what changes on every run or does not render on GitHub: timestamps, paths, widget state."""
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in ("papermill", "execution", "widgets"):
            cell.metadata.pop(key, None)
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)


def set_result_block(nb, record: dict, sweeps_dir: Path = RESULTS_DIR / "sweeps") -> None:
    """Rewrite the Result part of the first (Target/Result/Analysis) cell from the run's record, and, where the
    Analysis has its markers, the sentence on the arithmetics the search confirmed the run's model and recipe in
    (`confirmation.arithmetics_sentence`, from the sweep files under `sweeps_dir`)."""
    start = report.RESULT_START.format(name=record["name"])
    source = report.replace_between(nb.cells[0].source, start, report.RESULT_END, report.render_result(record))
    if report.ARITHMETICS_START in source:
        both = confirmation.arithmetics_sentence(assignment.runs_of(record)[0], sweeps_dir)
        source = report.replace_between(source, report.ARITHMETICS_START, report.ARITHMETICS_END,
                                        f"- {both}" * bool(both))
    nb.cells[0].source = source


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
                                       log_output=True, kernel_manager_class=IPCKernelManager)
        except papermill.PapermillExecutionError as err:
            raise NotebookFailed(f"{notebook} failed in cell {err.cell_index} (execution count {err.exec_count}): "
                                 f"{err.ename}: {err.evalue}. The committed notebook and results are "
                                 "unchanged.") from None
        nb = nbformat.read(running, as_version=4)
        clean_metadata(nb)
        record_path = staging / f"{notebook.stem}.json"
        if not record_path.is_file():
            raise NotebookFailed(f"{notebook} ran but wrote no {record_path.name}; the committed notebook is "
                                 "unchanged.")
        set_result_block(nb, load_record(record_path), results_dir / "sweeps")
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
    set_result_block(nb, load_record(results_dir / f"{notebook.stem}.json"), results_dir / "sweeps")
    write_notebook(nb, notebook)


def rf_tables(records: list[tuple[str, dict]]) -> dict[str, str]:
    """Notebook stem -> the receptive-field table, layer by layer, of its record's model as the committed code
    builds it (`make stale` fails where a record's model code has changed since)."""
    from ..model import MODELS
    from ..receptive_field import format_receptive_field, receptive_field

    return {Path(nb).stem: format_receptive_field(receptive_field(MODELS[assignment.runs_of(r)[0]["model"]]())[0])
            for nb, r in records}


def readme_rows(results_dir: Path = RESULTS_DIR) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """(the steps', the studies') (notebook, record) with a record under `results_dir`, in NOTEBOOKS' order."""
    rows = [(nb, load_record(results_dir / f"{Path(nb).stem}.json")) for nb in NOTEBOOKS
            if (results_dir / f"{Path(nb).stem}.json").is_file()]
    return [r for r in rows if "extended" not in r[0]], [r for r in rows if "extended" in r[0]]


def update_readme(readme: Path = REPO_ROOT / "README.md", results_dir: Path = RESULTS_DIR) -> None:
    """Regenerate the README's steps (Result and receptive-field table of each), the studies' table and the
    headline from the records under `results_dir`."""
    steps, studies = readme_rows(results_dir)
    text = report.replace_between(readme.read_text(), report.STEPS_START, report.STEPS_END,
                                  report.readme_steps(steps, STEP_PROSE, rf_tables(steps)))
    text = report.replace_between(text, report.README_START, report.README_END, report.readme_table(studies, STUDIES))
    seeds = results_dir / "seeds.json"
    if seeds.is_file():
        text = report.replace_between(text, report.HEADLINE_START, report.HEADLINE_END,
                                      report.headline(load_record(seeds), results_dir))
    atomic_write_bytes(readme, text.encode())


def recorded_seconds(notebook: str, results_dir: Path = RESULTS_DIR) -> float:
    """How long the notebook's last recorded run took (0 when it has none): the best guess of the next."""
    path = results_dir / f"{Path(notebook).stem}.json"
    return sum(r["total_seconds"] for r in assignment.runs_of(load_record(path))) if path.is_file() else 0.0


def notebook_command(notebook: str) -> list[str]:
    return [sys.executable, "-m", "era_s7.tools.notebooks", "--quiet", Path(notebook).stem]


def progress(elapsed: float, message: str) -> None:
    print(f"[{elapsed / 60:5.1f} min] {message}", flush=True)


def estimate_left(pending: list[str], running: dict[str, float], now: float, cores: int) -> str:
    """Minutes left, from each notebook's last recorded time: what the running ones (notebook -> start time)
    still need plus the pending ones, shared among the cores."""
    if not all(recorded_seconds(nb) for nb in [*pending, *running]):
        return "time left unknown (a notebook has no recorded time)"
    left = sum(recorded_seconds(nb) for nb in pending) + sum(max(0.0, recorded_seconds(nb) - (now - t0))
                                                            for nb, t0 in running.items())
    return f"about {left / cores / 60:.0f} min left (from the last recorded times)"


def run_pinned(notebooks: list[str], cores: list[int], command=notebook_command, timings: dict | None = None) -> int:
    """Run notebooks as separate processes over the cores, in two waves.

    The step notebooks (one training each) go first, one per core, each pinned to its core (so one thread each):
    on 2 cores, two one-thread trainings side by side get through more images than one two-thread training
    (research log, performance); the longest (by its last recorded time) starts first. The extended notebooks
    follow, one at a time in their listed order, each given every core: each spreads its runs over them (one
    pinned one-thread process per core) and may reuse the runs of those before it (step 3's, the seeds study's).
    Prints a line when a notebook starts or ends, with an estimate of what is left; fills `timings`
    (notebook -> seconds). Each child replaces its own notebook and results; returns the first non-zero exit
    code, else 0."""
    timings = {} if timings is None else timings
    start = time.perf_counter()
    steps = sorted([nb for nb in notebooks if "extended" not in nb], key=recorded_seconds, reverse=True)
    waves = [(steps, [(c,) for c in cores]), ([nb for nb in notebooks if "extended" in nb], [tuple(cores)])]
    for i, (wave, slots) in enumerate(waves):
        pending, running, failed = list(wave), {}, 0
        later = [nb for w, _ in waves[i + 1:] for nb in w]
        while pending or running:
            for slot in [s for s in slots if s not in running][:len(pending)]:
                nb = pending.pop(0)
                running[slot] = (nb, time.perf_counter(),
                                 subprocess.Popen(command(nb),
                                                  preexec_fn=lambda slot=slot: os.sched_setaffinity(0, slot)))
                progress(time.perf_counter() - start, f"started {nb} on core{'s' * (len(slot) > 1)} "
                                                       f"{', '.join(map(str, slot))}")
            pid, status = os.wait()  # until one child ends
            slot = next(s for s, (_, _, proc) in running.items() if proc.pid == pid)
            nb, t0, proc = running.pop(slot)
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            now = time.perf_counter()
            timings[nb] = now - t0
            left = estimate_left(pending + later, {n: t for n, t, _ in running.values()}, now, len(cores))
            progress(now - start, f"{'finished' if code == 0 else f'FAILED (exit {code})'} {nb} in "
                                  f"{(now - t0) / 60:.1f} min; {left}")
            failed = failed or code
        if failed:
            return failed
    return 0


def record_full_run(timings: dict[str, float], total_seconds: float, jobs: int,
                    path: Path = RESULTS_DIR / "make-notebooks.json"):
    """results/make-notebooks.json: what a full `make notebooks` took, where, at which commit."""
    return save_json(dict(total_seconds=total_seconds, jobs=jobs, device_name=device_name(torch.device("cpu")),
                          commit=git_commit(), torch=torch.__version__,
                          seconds={Path(nb).stem: round(s, 1) for nb, s in timings.items()}), path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook stems to run (default: all), e.g. step3 seeds")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: regenerate the Result blocks and the README table from results/*.json")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks at once, each pinned to its own core; 0: one per usable core")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # a run_pinned child: the parent tells
    args = parser.parse_args(argv)
    chosen = [nb for nb in NOTEBOOKS + OPTIONAL if Path(nb).stem in args.names] if args.names else list(NOTEBOOKS)
    unknown = set(args.names) - {Path(nb).stem for nb in NOTEBOOKS + OPTIONAL}
    if unknown:
        print(f"error: unknown notebook(s) {sorted(unknown)}; known: {[Path(nb).stem for nb in NOTEBOOKS + OPTIONAL]}",
              file=sys.stderr)
        return 2
    if args.report:
        chosen = [nb for nb in chosen + (OPTIONAL if not args.names else [])
                  if (RESULTS_DIR / f"{Path(nb).stem}.json").is_file()]
        for nb in chosen:
            refresh_result_block(REPO_ROOT / nb)
        update_readme()
        print(f"report: {len(chosen)} Result blocks and the README table regenerated from results/")
        return 0
    cores = usable_cores()[:args.jobs or None]
    start, timings, code = time.perf_counter(), {}, 0
    say = (lambda elapsed, message: None) if args.quiet else progress
    if len(cores) > 1 and len(chosen) > 1:
        code = run_pinned(chosen, cores, timings=timings)
    else:
        logging.getLogger("papermill").setLevel(logging.INFO)  # the cells' output, epoch lines included, in this log
        logging.getLogger("papermill").addFilter(CellOutputOnly())
        for nb in chosen:
            # each line names its notebook: with --jobs, several notebooks write to one log
            logging.basicConfig(format=f"    {Path(nb).stem}: %(message)s", force=True)
            say(time.perf_counter() - start, f"started {nb}")
            try:
                timings[nb] = execute(REPO_ROOT / nb)
            except NotebookFailed as err:
                print(f"error: {err}", file=sys.stderr)
                code = 1
                break
            say(time.perf_counter() - start, f"finished {nb} in {timings[nb] / 60:.1f} min; "
                + estimate_left(chosen[chosen.index(nb) + 1:], {}, 0.0, 1))
        cores = cores[:1]
    update_readme()
    seconds = time.perf_counter() - start
    if code == 0 and chosen == NOTEBOOKS:
        print(f"recorded in {record_full_run(timings, seconds, len(cores)).relative_to(REPO_ROOT)}")
    if not args.quiet:
        print(f"notebooks: {len(chosen)} run on {len(cores)} core(s) in {seconds:.0f} s ({seconds / 60:.1f} min)")
    return code


if __name__ == "__main__":
    sys.exit(main())
