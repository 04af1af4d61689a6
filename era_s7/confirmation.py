"""Step 3's test-set confirmation across arithmetics (issue 41): the runs of one model, code and recipe on the test
split, from every sweep file on disk (`confirmations`: one condition a file). Compared file by file: each file's seeds
(`summary`) and each arithmetic paired seed by seed with the first (`paired_arithmetics`), in one sentence for
the README and the notebooks (`arithmetics_sentence`) and a table for docs/search.md (`arithmetics_table`). Pooled by
precision and device type ("bf16 CPU", "fp32 GPU"), one run a seed (`pools`): a seed that several processors ran
counts once in the pool, by the first file's run (the round's own condition first, then by path), and the pairs are
reported as a paired difference. The pool's statistics, its lowest minima and a histogram of the minima with the
target line are what docs/search.md shows (`section`), the figure written beside it
(results/figures/confirmation-minima.png)."""
from __future__ import annotations

import json
from pathlib import Path

from .assignment import (
    DECISION_LINES,
    LAST,
    TARGET,
    held_count,
    holds,
    mean_se_sd,
    on_side,
    paired_difference,
    run_summary,
    runs_of,
)

FIGURE = "confirmation-minima.png"


def arithmetic_words(run: dict, short: bool = False) -> str:
    """A run's arithmetic in words: its precision, and the processor or GPU that computed it, e.g. "fp32 on a GPU
    (NVIDIA H200)", or short "fp32 GPU" (which one: the sweep file's name; the full condition:
    `report.condition_words`)."""
    where = "CPU" if run["device"] == "cpu" else "GPU"
    if short:
        return f"{run.get('precision', 'fp32')} {where}"
    return f"{run.get('precision', 'fp32')} on a {where} ({run.get('device_name') or run['device']})"


def confirmations(run: dict, sweeps_dir: Path) -> list[tuple[str, list[dict]]]:
    """The search's test-set confirmations of a run's model and recipe, in every condition on disk: (path relative
    to the folder above `sweeps_dir`, e.g. "sweeps/h200/x-test.json"; its runs) of each sweep file under `sweeps_dir`
    (one condition each: `make sweep DIR=...`) whose runs are on the test split and have the run's model, model code
    (source hash) and hyperparameters, the precision's apart (`recipes.PRECISIONS`). The file of the run's own
    arithmetic first, then by path."""
    from .recipes import PRECISIONS, check_hyperparameters

    precision_keys = {k for hp in PRECISIONS.values() for k in hp}

    def recipe(r: dict) -> tuple:
        hp = check_hyperparameters(r.get("hyperparameters", {}))
        return r.get("model"), r.get("model_source_sha256"), {k: v for k, v in hp.items() if k not in precision_keys}

    found = []
    for path in sorted(Path(sweeps_dir).rglob("*.json")):
        runs = runs_of(json.loads(path.read_text()))
        if runs and all(r.get("split") == "test" and "history" in r and recipe(r) == recipe(run) for r in runs):
            found.append((str(path.relative_to(Path(sweeps_dir).parent)), runs))
    return sorted(found, key=lambda f: (arithmetic_words(f[1][0]) != arithmetic_words(run), f[0]))


def paired_arithmetics(runs: list[dict], reference: list[dict]) -> dict[str, tuple[float, float, int]]:
    """runs - reference, seed by seed (`paired_difference`), in the last-5 mean and in the last-5 minimum:
    {"mean": (mean, standard error, seeds), "min": (...)}."""
    by = {key: [{r["seed"]: run_summary(r)[f"last5_{key}"] for r in rs} for rs in (runs, reference)]
          for key in ("mean", "min")}
    return {key: paired_difference(*pair) for key, pair in by.items()}


def arithmetics_sentence(run: dict, sweeps_dir: Path) -> str:
    """Markdown, one sentence: in how many arithmetics the search confirmed a run's model and recipe on the test set
    (`confirmations`), on how many seeds each held, and each other arithmetic paired seed by seed with the run's own
    (or the first) in the last-5 mean and minimum (± standard error; the whole numbers: `arithmetics_table`); ""
    when fewer than two are on disk."""
    found = confirmations(run, sweeps_dir)
    if len(found) < 2:
        return ""
    reference = found[0][1]
    held = [held_count(dict(runs=runs)) for _, runs in found]
    text = "The search's test-set confirmation: " + ", ".join(
        f"**{h} of {n}**{' seeds hold' if i == 0 else ''} in {arithmetic_words(runs[0], True)}"
        for i, ((_, runs), (h, n)) in enumerate(zip(found, held)))
    for _, runs in found[1:]:
        d = paired_arithmetics(runs, reference)
        text += (f"; {arithmetic_words(runs[0], True)} − {arithmetic_words(reference[0], True)}, paired by seed: "
                 f"{d['mean'][0]:+.3f} ± {d['mean'][1]:.3f} (last-5 mean), {d['min'][0]:+.3f} ± {d['min'][1]:.3f} "
                 f"(last-5 min), ± standard error over {d['mean'][2]} seeds")
    return text + "."


def arithmetics_table(run: dict, sweeps_dir: Path) -> str:
    """Markdown: one row per arithmetic the search confirmed a run's model and recipe in on the test set
    (`confirmations`): the file, seeds, how many held, the mean ± standard error of the last-5 means and minima,
    the lowest last-5 minimum; then each other arithmetic paired seed by seed with the first (± standard error,
    and in standard errors)."""
    found = confirmations(run, sweeps_dir)
    lines = [f"| arithmetic | file | seeds | seeds held ≥ {TARGET} | last-5 mean (mean over seeds ± SE) | "
             "last-5 min (mean over seeds ± SE) | last-5 min, worst seed |", "|---|---|---|---|---|---|---|"]
    for path, runs in found:
        s = summary(runs, lowest=1)
        lines.append(f"| {arithmetic_words(runs[0])} | `results/{path}` | {s['n']} | {s['held']}/{s['n']} | "
                     f"{on_side(s['mean'][0], 3)} ± {s['mean'][1]:.3f} | "
                     f"{on_side(s['min'][0], 3)} ± {s['min'][1]:.3f} | "
                     f"{on_side(s['lowest'][0][0])} (seed {s['lowest'][0][1]}) |")
    for path, runs in found[1:]:
        d = paired_arithmetics(runs, found[0][1])
        lines += ["", f"Paired seed by seed over the {d['mean'][2]} seeds both have, {arithmetic_words(runs[0])} − "
                      f"{arithmetic_words(found[0][1][0])}: last-5 mean {d['mean'][0]:+.3f} ± {d['mean'][1]:.3f} "
                      f"({on_side(d['mean'][0] / d['mean'][1], 1, DECISION_LINES, True)} standard errors), last-5 min "
                      f"{d['min'][0]:+.3f} ± {d['min'][1]:.3f} "
                      f"({on_side(d['min'][0] / d['min'][1], 1, DECISION_LINES, True)} standard errors)."]
    return "\n".join(lines)


def pools(run: dict, sweeps_dir: Path) -> dict[str, dict]:
    """arithmetic ("bf16 CPU", ...) -> {"runs": one run a seed, by seed; "files": [(path, runs)] of that arithmetic;
    "pairs": [(path, paired_arithmetics)] of each later file against the pool over the seeds both have}."""
    out: dict[str, dict] = {}
    for path, runs in confirmations(run, sweeps_dir):
        pool = out.setdefault(arithmetic_words(runs[0], short=True), dict(runs={}, files=[], pairs=[]))
        shared = [r for r in runs if r["seed"] in pool["runs"]]
        if len(shared) >= 2:
            pool["pairs"].append((path, paired_arithmetics(shared, [pool["runs"][r["seed"]] for r in shared])))
        for r in runs:
            pool["runs"].setdefault(r["seed"], r)
        pool["files"].append((path, runs))
    return out


def summary(runs: list[dict], lowest: int = 5) -> dict:
    """Over a pool's runs: held (every one of the last 5 epochs >= TARGET) of n; mean ± SE of the last-5 means and of
    the last-5 minima; the `lowest` smallest minima as (minimum, seed, processor)."""
    s = [dict(run_summary(r), processor=r.get("device_name")) for r in runs]
    held = sum(map(holds, runs))
    low = sorted(s, key=lambda x: (x["last5_min"], x["seed"]))[:lowest]
    return dict(held=held, n=len(s), mean=mean_se_sd([x["last5_mean"] for x in s])[:2],
                min=mean_se_sd([x["last5_min"] for x in s])[:2],
                lowest=[(x["last5_min"], x["seed"], x["processor"]) for x in low])


def plot_minima(found: dict[str, dict], path: Path) -> Path:
    """A histogram of the last-5 minima of each pool (one panel each, 0.01-point bins: one test image), with the
    target line; saved as `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(found), figsize=(4.5 * len(found), 3.2), squeeze=False, sharey=True)
    for ax, (name, pool) in zip(axes[0], found.items()):
        minima = [run_summary(r)["last5_min"] for r in pool["runs"].values()]
        lo, hi = min(minima + [TARGET]) - 0.005, max(minima) + 0.015
        bins = [lo + 0.01 * i for i in range(int((hi - lo) / 0.01) + 2)]
        ax.hist(minima, bins=bins, color="tab:blue", edgecolor="white")
        ax.axvline(TARGET, color="tab:red", linestyle="--", label=f"{TARGET} %")
        ax.set(title=f"{name}: {len(minima)} seeds", xlabel=f"last-{LAST} minimum, test accuracy (%)",
               ylabel="seeds")
        ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def section(run: dict, sweeps_dir: Path, figure: Path | None = None, link: str = "", planned: int = 100) -> str:
    """Markdown: per arithmetic, how many of the `planned` seeds are on disk and from which processors, the hold count,
    the mean ± SE of the last-5 means and minima, the lowest five minima; the paired differences where two
    processors ran the same seeds; and the histogram (written to `figure` when given, linked as `link`)."""
    found = pools(run, sweeps_dir)
    if not found:
        return "(no runs yet)"
    lines = [f"| arithmetic | seeds on disk (of {planned}) | held ≥ {TARGET} (runs) | last-5 mean, mean over seeds "
             "± SE | last-5 min, mean over seeds ± SE | the five lowest last-5 minima (seed, processor) |",
             "|---|---|---|---|---|---|"]
    for name, pool in found.items():
        s = summary(list(pool["runs"].values()))
        low = ", ".join(f"{on_side(m)} ({seed}, {proc})" for m, seed, proc in s["lowest"])
        lines.append(f"| {name} | {s['n']} | {s['held']} of {s['n']} | {on_side(s['mean'][0], 3)} ± {s['mean'][1]:.3f} "
                     f"| {on_side(s['min'][0], 3)} ± {s['min'][1]:.3f} | {low} |")
    lines += ["", "Files pooled (one condition each; a seed on two counts once, by the first):", ""]
    for name, pool in found.items():
        for path, runs in pool["files"]:
            lines.append(f"- {name}: `results/{path}`, seeds {min(r['seed'] for r in runs)}–"
                         f"{max(r['seed'] for r in runs)} ({len(runs)} runs) on {runs[0].get('device_name')}")
        for path, d in pool["pairs"]:
            lines.append(f"  - `results/{path}` − the pool on the {d['mean'][2]} seeds both have, paired: last-5 mean "
                         f"{d['mean'][0]:+.3f} ± {d['mean'][1]:.3f}, last-5 min {d['min'][0]:+.3f} ± {d['min'][1]:.3f}")
    if figure is not None:
        plot_minima(found, figure)
        lines += ["", f"![the last-5 minima of each pool, with the {TARGET} % line]({link or figure})"]
    return "\n".join(lines)
