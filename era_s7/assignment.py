"""The ERA S7 assignment in one place: its limits, the hold rule, the statistics over the last epochs, and the
verdict per rule that `era_s7.tools.check` gives a learner's model. Everything else (report, plots, parameters, check)
reads them from here."""
from __future__ import annotations

import math
import statistics

PARAMS_LIMIT = 8000  # fewer than this many trainable parameters
MAX_EPOCHS = 15  # at most this many epochs; a run of more epochs is exploration, and its Result block says so
TARGET = 99.4  # test accuracy, %, to hold ...
LAST = 5  # ... on every one of the last LAST epochs
GOAL_MEAN = 99.5  # the search's goal for a model's mean over seeds of the last-5 means (docs/search.md, Protocol)
VERDICT_LINES = (TARGET, GOAL_MEAN)  # what an accuracy is read against
DECISION_LINES = (2.0, -2.0)  # what a paired difference in standard errors is read against (adopt at >= +2)


def on_side(value: float, digits: int = 2, lines: tuple[float, ...] = VERDICT_LINES, sign: bool = False) -> str:
    """`value` with `digits` decimals, or as many more as it takes for the printed figure to fall on the same side
    of every line in `lines` as the value itself: rounding never changes a verdict (99.4991 -> "99.499", not
    "99.50"; 99.3996 -> "99.3996", not "99.40"). A line below 0 is reached from above (a loss of 2 standard errors
    is <= -2). `sign`: a + before a positive value."""
    def side(x: float, line: float) -> bool:
        return x <= line if line < 0 else x >= line

    for d in range(digits, 12):
        text = f"{value:{'+' if sign else ''}.{d}f}"
        if all(side(float(text), line) == side(value, line) for line in lines):
            return text
    return f"{value:{'+' if sign else ''}}"


def runs_of(record: dict) -> list[dict]:
    """The single-run records inside a record (a multi-run record keeps them under 'runs')."""
    return record.get("runs", [record])


def last_accuracies(run: dict, n: int = LAST) -> list[float]:
    return [r["test_acc"] for r in run["history"][-n:]]


def run_summary(run: dict) -> dict:
    accs = last_accuracies(run)
    return dict(seed=run["seed"], final=run["history"][-1]["test_acc"], best=max(r["test_acc"] for r in run["history"]),
                last5_min=min(accs), last5_mean=statistics.mean(accs), last5=accs,
                train_acc=run["history"][-1]["train_acc"], seconds=run["total_seconds"])


def mean_se_sd(values: list[float]) -> tuple[float, float, float]:
    """(mean, standard error, standard deviation) of the values; the spreads are nan for fewer than 2."""
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.mean(values), sd / math.sqrt(len(values)), sd


def paired_difference(candidate: dict[int, float], baseline: dict[int, float]) -> tuple[float, float, int]:
    """(mean, standard error, n) of candidate - baseline over the seeds both have."""
    diffs = [candidate[s] - baseline[s] for s in sorted(set(candidate) & set(baseline))]
    if len(diffs) < 2:
        return (diffs[0] if diffs else math.nan), math.nan, len(diffs)
    return statistics.mean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs)), len(diffs)


def last5_spread(runs: list[dict]) -> tuple[float, float, float]:
    """(mean, standard error, standard deviation) of the runs' last-5 means, in percent; the spreads are nan for
    fewer than 2 runs."""
    return mean_se_sd([run_summary(r)["last5_mean"] for r in runs])


def holds(run: dict, target: float = TARGET) -> bool:
    """The hold rule, the one place it is written: every one of the run's last LAST epochs is >= target (its
    last-LAST minimum), on a single-run record."""
    return min(last_accuracies(run)) >= target


def held_count(record: dict, target: float = TARGET) -> tuple[int, int]:
    """(runs whose every one of the last 5 epochs is >= target, runs)."""
    runs = runs_of(record)
    return sum(holds(r, target) for r in runs), len(runs)


def parse_seeds(text: str) -> list[int]:
    """'1-8' or '1,3,5' or '1-4,9' -> sorted list of seeds."""
    seeds = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"seeds={text!r}: write e.g. '1-8', '1,3,5' or '1-4,9'") from None
    return sorted(seeds)


def seed_list(seeds: list[int]) -> str:
    """'1-5' for a run of consecutive seeds, else '1, 3, 7'."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def seeds_phrase(seeds: list[int]) -> str:
    """'seed 3', 'seeds 1, 3' or 'seeds 1–5'; 'no seed' for none."""
    return f"seed{'s' * (len(seeds) > 1)} {seed_list(seeds)}" if seeds else "no seed"


def images_short(accuracy: float, test_images: int, target: float = TARGET) -> int:
    """How many more test images an epoch at `accuracy` needed to reach the target."""
    return max(0, math.ceil(round(target * test_images / 100, 6)) - round(accuracy * test_images / 100))


def rules(record: dict) -> list[tuple[str, bool, str]]:
    """Each rule of the assignment, judged from the check's record: (rule, passed, why in words: by how much)."""
    runs, params, epochs = record["runs"], record["params"], record["hyperparameters"]["epochs"]
    if params < PARAMS_LIMIT:
        rule_params = (True, f"{params:,} trainable parameters, {PARAMS_LIMIT - params:,} below the limit of "
                             f"{PARAMS_LIMIT:,}")
    else:
        rule_params = (False, f"{params:,} trainable parameters: {params - PARAMS_LIMIT + 1:,} too many (the rule is "
                              f"fewer than {PARAMS_LIMIT:,})")
    if epochs <= MAX_EPOCHS:
        rule_epochs = (True, f"{epochs} epoch{'s' * (epochs != 1)}, at most {MAX_EPOCHS}")
    else:
        rule_epochs = (False, f"{epochs} epochs: {epochs - MAX_EPOCHS} more than the {MAX_EPOCHS} allowed")
    rules = [(f"fewer than {PARAMS_LIMIT:,} parameters", *rule_params), (f"at most {MAX_EPOCHS} epochs", *rule_epochs)]
    hold = f"≥ {TARGET} % on every one of the last {LAST} epochs, on every seed"
    if runs:
        held, n = held_count(record)
        lowest = min(runs, key=lambda r: run_summary(r)["last5_min"])
        low = run_summary(lowest)["last5_min"]
        missed = [r for r in runs if not holds(r)]
        if epochs < LAST:
            rules.append((hold, False,
                          f"only {epochs} epoch{'s' * (epochs > 1)} trained: the rule needs the last {LAST}"))
        elif not missed:
            rules.append((hold, True, f"held on {held} of {n} seeds; the lowest of the last {LAST} epochs is "
                                      f"{low:.2f} % (seed {lowest['seed']}), "
                                      f"{low - TARGET:.2f} point above {TARGET} %"))
        else:
            misses = "; ".join(
                f"seed {r['seed']}: lowest {run_summary(r)['last5_min']:.2f} %, "
                f"{TARGET - run_summary(r)['last5_min']:.2f} "
                f"point short ({images_short(run_summary(r)['last5_min'], record['test_images'])} of the "
                f"{record['test_images']:,} test images), below {TARGET} on "
                f"{sum(a < TARGET for a in last_accuracies(r))} of its last {LAST}" for r in missed)
            kept = [r["seed"] for r in runs if r not in missed]
            rules.append((hold, False, f"held on {held} of {n} seeds{f' ({seed_list(kept)})' if kept else ''}; "
                                       f"missed on {misses}"))
    else:
        rules.append((hold, False, "no seed trained yet"))
    return rules


def passes(record: dict) -> bool:
    """Every rule passed, on every seed asked."""
    return (all(ok for _, ok, _ in rules(record))
            and sorted(r["seed"] for r in record["runs"]) == sorted(record["seeds"]))


def verdict(record: dict) -> list[str]:
    """The verdict per rule of the assignment, in words (what passed, what failed, by how much), and the seeds it
    rests on, from the check's record; its first line is the overall verdict."""
    judged = rules(record)
    asked, done = record["seeds"], [r["seed"] for r in record["runs"]]
    failed = [name for name, ok, _ in judged if not ok]
    on = seeds_phrase(done)
    partial = (f"; {len(done)} of the {len(asked)} seeds asked are done (rerun the same command to resume)"
               if sorted(done) != sorted(asked) else "")
    head = (f"Verdict: {record['model']} passes every rule of the assignment, on {on}{partial}" if not failed else
            f"Verdict: {record['model']} fails {len(failed)} of {len(judged)} rules ({'; '.join(failed)}), "
            f"on {on}{partial}")
    return [head] + [f"- {name}: {'passed' if ok else 'FAILED'}: {why}" for name, ok, why in judged]
