"""`make stale` (python -m era_s7.tools.stale): fails when a record under results/ (every one: the steps' and
studies' results/*.json, the sweeps' results/sweeps/**, the checks' results/checks/) was not produced by the
committed code.

A run's code is its model's source hash (`results.model_source_sha256`: the class, its bases in its module and every
function of that module). A step's or study's run must be of today's class in era_s7/model.py; a sweep's run of
today's code of its candidate (era_s7/tools/candidates.py), or of an earlier round's code that EARLIER_CODE names:
rounds 1-5 and the precision check ran on code since changed, and their files are the search's record as made; a
learner's check (kind "check") must load again and hash the same (`learner.stale_problems`). A record without a
hashed run (bench, profile, a script's measurement) is not a run's record. A command: the core never imports it."""
from __future__ import annotations

from pathlib import Path

from .. import model as models
from ..assignment import runs_of
from ..learner import stale_problems
from ..results import RESULTS_DIR, load_record, model_source_sha256
from .rounds import CANDIDATES, DERIVED

SWEEPS = "sweeps"  # the folder under results/ whose records are a candidate's runs
# The code of runs that the search made on code it has changed since, sha256 -> the class and the runs: the sweep
# files keep them as made. Any other hash in a sweep file must be today's code of its candidate: a hash that
# changes under a run made by today's code (an edit of model.py or candidates.py) is stale, and this check says so.
EARLIER_CODE = {
    "5d385b4da62ccbe6075a68f6ad403aa314f95237778dab3349f41e6479e67613":
        "Model_3 of round 1 (its baseline, lr02, elastic, rot12, ls0; candidates.Round1 today)",
    "83e97aaf0c7135f1f5c038a6ef79543be0b36c6bfbedc0b644d38039a4c33815": "Head2 of round 1 (head2)",
    "d0bbd1ae5f08729041534e35a92e8126812c7423929a2f9779d65d8124aa5f49": "Squeeze of round 1 (squeeze)",
    "541a78c39309b19f5638e59c74f0989ff3ee3dd08ec2dff9ee5e5352c40f6554": "Head2 of round 1's test-set confirmation",
    "2af5d28476da8c152122e0b10011bdb8eb80af76a5e7ad8613d35a70262f9b25":
        "Head2 of round 2 (head2-lr02, -ls0, -rot12, -all3)",
    "e7cf91217c3f648bffc75ea74b11d913ae52830676ccdf2b4df4da1da0382e2e":
        "Model_3 of round 3 (m3, its baseline; candidates.M3 today)",
    "fbd56ec4191126777665ade67732c2a187f493b4bdcbc7945a810e5395013a79":
        "DSX of rounds 3-4 (dsx40, dsx40s20, dsx34x4, dsxpre2, dsx44k5 and dsx41's seeds 1-4)",
    "9b51e9f156adeff2a45fc7f2f31c897b29f2af34f9cebcef6c3b16086cd5f36b": "ExpandBeforeGAP of round 3 (m3x20)",
    "e0232a659e170ea77b5fcb7f6a749b2eec1c107e8880112934dcf2aecb36711e": "MBV2 of round 3 (mbv2)",
    "4d7278590e2574b74b3477210e048c88658568203470df725e8836f8a9c21df6": "Shuffle of round 3 (shuffle28)",
    "1fde60162702836931ccae11835981f88350cc4d97ec38c43af5323ee934a572":
        "Model_1 of the precision check's fp32 seeds 6-8 (m1)",
}


def candidate_code(candidate: str) -> tuple[str, str] | None:
    """(class name, source hash) of the model a candidate builds today (a derived one: its source's); None for a
    candidate that rounds.py no longer knows."""
    source = DERIVED[candidate].source if candidate in DERIVED else candidate
    if source not in CANDIDATES:
        return None
    cls = type(CANDIDATES[source].build())
    return cls.__name__, model_source_sha256(cls)


def sweep_problems(record: dict, shown: str) -> list[str]:
    """The runs of a sweep file made by neither its candidate's code today nor an EARLIER_CODE."""
    problems = []
    for run in runs_of(record):
        candidate = run.get("candidate", record.get("candidate", ""))
        today = candidate_code(candidate)
        if today is None:
            problems.append(f"{shown}: candidate {candidate!r} is not in era_s7/tools/rounds.py")
        elif (run.get("model"), run.get("model_source_sha256")) != today and run.get("model_source_sha256") \
                not in EARLIER_CODE:
            problems.append(f"{shown}: seed {run.get('seed')} of {candidate} ({run.get('model')}) was made by code "
                            "that is neither its candidate's today nor an earlier round's (stale.EARLIER_CODE): "
                            "model.py or candidates.py changed under it")
    return problems


def step_problems(record: dict, shown: str, name: str) -> list[str]:
    """The runs of a step's or study's record whose class in era_s7/model.py is gone or hashes otherwise."""
    problems = []
    for run in runs_of(record):
        cls = getattr(models, run.get("model", ""), None)
        if cls is None:
            problems.append(f"{shown}: model {run.get('model')!r} is not in era_s7/model.py")
        elif run.get("model_source_sha256") != model_source_sha256(cls):
            problems.append(f"{shown}: {run['model']} was changed after this run (source hash differs); "
                            f"rerun its notebook: make notebooks NB={name}")
    return problems


def stale_records(results_dir: Path | str = RESULTS_DIR) -> list[str]:
    """The problems with the run records under `results_dir` (`run_records`): a run whose code differs from the
    committed code (see the module's docstring), or a check record whose class has changed or cannot be loaded
    again (`learner.stale_problems`)."""
    root, problems = Path(results_dir), []
    for path, record in run_records(root):
        shown = str(path.relative_to(root))
        if record.get("kind") == "check":  # a learner's model (python -m era_s7.tools.check), not one of model.py
            problems += stale_problems(record, path)
        elif path.relative_to(root).parts[0] == SWEEPS:
            problems += sweep_problems(record, shown)
        else:
            problems += step_problems(record, shown, path.stem)
    return problems


def run_records(results_dir: Path | str = RESULTS_DIR) -> list[tuple[Path, dict]]:
    """(path, record) of every record under `results_dir`, its subfolders included, that holds a run with a source
    hash: not bench-<device>.json, a profile or a script's measurement; a hidden folder (make notebooks' staging)
    aside."""
    root, found = Path(results_dir), []
    for path in sorted(root.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        record = load_record(path)
        if any(isinstance(run, dict) and "model_source_sha256" in run for run in runs_of(record)):
            found.append((path, record))
    return found


def main() -> int:
    problems = stale_records()
    for p in problems:
        print(f"stale: {p}")
    print(f"stale: {len(run_records())} run records under results/ (sweeps and checks included), "
          f"{len(problems)} stale")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
