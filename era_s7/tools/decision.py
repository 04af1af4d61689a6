"""The search's decision rules, each fixed before the runs it decides: `winner` (rounds 1-4: the largest gain of at
least 2 standard errors on at least 8 paired seeds) and the staged rule of rounds 5 on (`stage`: a screen on seeds
1-4, a gain >= 2 standard errors on seeds 1-8, replicated on fresh seeds 9-16), applied to a round's sweep files
(`decision`, `staged_decision`), in words."""
from __future__ import annotations

import math
from pathlib import Path

from ..assignment import paired_difference
from ..results import REPO_ROOT
from .rounds import ROUND_DIRS, ROUND_SEEDS, ROUNDS, TEST_CONFIRMATIONS
from .sweep_files import SWEEPS_DIR, last5_means, last5_mins, round_dir


def winner(split: str, sweeps_dir: Path = SWEEPS_DIR, round_: str = "round 1", min_seeds: int = 8,
           min_se: float = 2.0) -> tuple[str, float, float, int] | None:
    """The decision rule, fixed before the runs: of the round's candidates paired with its baseline on at least
    `min_seeds` seeds, the one with the largest gain in last-5 mean, provided that gain is at least `min_se`
    standard errors; (name, gain, standard error, seeds), or None when no candidate qualifies. Only the seeds the
    round itself ran count (rounds.ROUND_SEEDS). `sweeps_dir` is the root: the round's files are in its
    precision's folder."""
    baseline, candidates, precision = ROUNDS[round_]
    sweeps_dir = round_dir(sweeps_dir, round_)
    base = last5_means(baseline, split, sweeps_dir)
    qualified = []
    for c in candidates:
        first, last = ROUND_SEEDS.get(round_, {}).get(c, (1, math.inf))  # a later round's seeds of it do not count
        means = {s: m for s, m in last5_means(c, split, sweeps_dir).items() if first <= s <= last}
        diff, se, n = paired_difference(means, base)
        if n >= min_seeds and se > 0 and diff >= min_se * se:
            qualified.append((c, diff, se, n))
    return max(qualified, key=lambda q: q[1], default=None)


# The staged rule of rounds 5 on, fixed before their runs: (first seed, last seed, what passing there needs)
STAGES = ((1, 4, "a positive gain"), (1, 8, "a gain >= 2 SE"), (9, 16, "a gain >= 2 SE on these 8 alone"))
STAGED_ROUNDS = ("round 5", "round 6", "round 7")
# round -> the measure its staged rule decides on (default "mean"): round 7 aims at the last-5 window, so it decides on
# the assignment's own measure, the paired last-5 minimum, and asks the paired last-5 mean not to be lower
MEASURES = {"round 7": "min"}

def stage(candidate: dict[int, float], baseline: dict[int, float], min_se: float = 2.0,
          guard: tuple[dict[int, float], dict[int, float]] | None = None,
          measure: str = "mean") -> tuple[str, str | None]:
    """Where a candidate stands under the staged rule, from its and the baseline's last-5 `measure` ("mean" or
    "min") by seed: a screen on seeds 1-4 stops it unless its paired gain is positive; on seeds 1-8 a gain >= `min_se`
    standard errors qualifies it; fresh seeds 9-16 must replicate that (>= `min_se` standard errors on those 8 alone).
    `guard` (the candidate's and baseline's last-5 means, when the rule decides on another measure): from seeds 1-8
    on, the paired gain in the mean must also be >= 0. Returns (what it has reached, in words with the gain ± SE; the
    seeds of the stage to run next, "1-4", "1-8" or "9-16", or None once it stopped or passed every stage)."""
    reached = None
    for first, last, needs in STAGES:
        seeds = range(first, last + 1)
        paired = [s for s in seeds if s in candidate and s in baseline]
        if len(paired) < len(seeds):
            progress = f"{len(paired)} of seeds {first}-{last} paired"
            return (f"{reached}; {progress}" if reached else f"screening ({progress})"), f"{first}-{last}"
        diff, se, n = paired_difference({s: candidate[s] for s in seeds}, baseline)
        gain = ("" if measure == "mean" else f"last-5 {measure} ") + f"{diff:+.3f} ± {se:.3f} on seeds {first}-{last}"
        passed = diff > 0 if last == 4 else se > 0 and diff >= min_se * se
        if guard is not None and last != 4:
            mean_diff, _, _ = paired_difference({s: guard[0][s] for s in seeds if s in guard[0]}, guard[1])
            gain += f", last-5 mean {mean_diff:+.3f}"
            if passed and mean_diff < 0:
                return f"stopped: {gain}, where the rule needs the mean not lower", None
        if not passed:
            return f"stopped: {gain}, where the rule needs {needs}", None
        reached = f"passed seeds {first}-{last} ({gain})"
    return f"replicated ({reached.removeprefix('passed ')}): to the test set", None


def staged_decision(split: str, sweeps_dir: Path = SWEEPS_DIR, round_: str = "round 6") -> str:
    """Markdown: the staged rule (`stage`) applied to each of the round's candidates, and the sweep commands that
    take the round on, the stage nearest adoption first; once a candidate has replicated, the round's choice instead
    (the largest gain of those that replicated) and the command of its test-set confirmation (TEST_CONFIRMATIONS).
    `sweeps_dir` is the root."""
    baseline, candidates, precision = ROUNDS[round_]
    files = round_dir(sweeps_dir, round_)
    measure = MEASURES.get(round_, "mean")
    of = last5_mins if measure == "min" else last5_means
    base, base_means = of(baseline, split, files), last5_means(baseline, split, files)
    lines, todo, replicated = [], {}, {}  # replicated: candidate -> its paired gain over all its seeds
    for c in candidates:
        means = of(c, split, files)
        guard = (last5_means(c, split, files), base_means) if measure != "mean" else None
        reached, seeds = stage(means, base, guard=guard, measure=measure)
        lines.append(f"- `{c}`: {reached}" + (f"; next: seeds {seeds}" if seeds else ""))
        if seeds:
            todo.setdefault(seeds, []).append(c)
        if reached.startswith("replicated"):
            replicated[c] = paired_difference(means, base)[0]
    on, guarded = ((f", on the paired last-5 {measure}", " with the paired last-5 mean not lower")
                   if measure != "mean" else ("", ""))
    rule = (f"Decision rule{on} (a screen on seeds 1-4 stops a gain that is not positive; a gain >= 2 standard errors "
            f"on seeds 1-8{guarded} qualifies; fresh seeds 9-16 must replicate it), stage by stage:\n\n")
    directory = f" DIR={(SWEEPS_DIR / ROUND_DIRS[round_]).relative_to(REPO_ROOT)}" if round_ in ROUND_DIRS else ""
    if replicated:  # the round has its choice: the others' later stages would decide nothing
        chosen = max(replicated, key=replicated.get)
        confirm = " ".join(TEST_CONFIRMATIONS.get(round_, [chosen]))
        return (rule + "\n".join(lines) + f"\n\nThe round adopts `{chosen}`" +
                (f" (of {len(replicated)} that replicated, the largest paired gain over all its seeds)"
                 if len(replicated) > 1 else "") + "; the others' next stages are not run. The test set scores it: "
                f"`make sweep CANDIDATE=\"{confirm}\" SEEDS=1-20 SPLIT=test PRECISION={precision}{directory}`")
    nearest_adoption_first = [f"{first}-{last}" for first, last, _ in reversed(STAGES)]
    nexts = [f"`make sweep CANDIDATE=\"{' '.join([baseline, *todo[seeds]])}\" SEEDS={seeds} PRECISION={precision}"
             f"{directory}`" for seeds in nearest_adoption_first if seeds in todo]
    return rule + "\n".join(lines) + ("\n\nNext: " + "; then ".join(nexts) if nexts else "")


def decision(split: str, sweeps_dir: Path = SWEEPS_DIR, round_: str = "round 1") -> str:
    """The round's rule applied to its runs, in words: the staged rule for STAGED_ROUNDS, else `winner`'s."""
    if round_ in STAGED_ROUNDS:
        return staged_decision(split, sweeps_dir, round_)
    chosen = winner(split, sweeps_dir, round_)
    rule = "Decision rule (a gain ≥ 2 standard errors on ≥ 8 paired seeds, the largest such gain): "
    if chosen is None:
        return rule + "no candidate qualifies."
    name, diff, se, n = chosen
    return rule + f"**{name}**, {diff:+.3f} ± {se:.3f} on {n} seeds."
