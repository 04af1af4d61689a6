"""`make check` (python -m era_s7.tools.stale): fails when a results/*.json was not produced by the committed model code.

A command: it reads the records (results) and judges a learner's check record as `era_s7.tools.check` does; nothing in
the core imports it."""
from __future__ import annotations

from pathlib import Path

from .. import model as models
from ..assignment import runs_of
from .check import stale_problems
from ..results import RESULTS_DIR, load_record, model_source_sha256


def stale_records(results_dir: Path | str = RESULTS_DIR) -> list[str]:
    """Problems with results/*.json: a run whose model source hash differs from the committed model code, or a
    check record whose class has changed or cannot be loaded again (`check.stale_problems`)."""
    problems = []
    for path in sorted(Path(results_dir).glob("*.json")):
        record = load_record(path)
        if "history" not in record and "runs" not in record:
            continue  # not a training run (e.g. bench-<device>.json)
        if record.get("kind") == "check":  # a learner's model (python -m era_s7.tools.check), not one of era_s7/model.py
            problems += stale_problems(record, path)
            continue
        for run in runs_of(record):
            cls = getattr(models, run.get("model", ""), None)
            if cls is None:
                problems.append(f"{path.name}: model {run.get('model')!r} is not in era_s7/model.py")
            elif run.get("model_source_sha256") != model_source_sha256(cls):
                problems.append(f"{path.name}: {run['model']} was changed after this run (source hash differs); "
                                f"rerun its notebook: make notebooks NB={path.stem}")
    return problems


def main() -> int:
    problems = stale_records()
    for p in problems:
        print(f"stale: {p}")
    print(f"check: {len(list(RESULTS_DIR.glob('*.json')))} results files, {len(problems)} stale")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
