"""Step 3's test-set confirmation pooled by arithmetic (issue 41): the runs of one model, code and recipe on the test
split, from every sweep file on disk (`report.confirmations`: one condition a file), pooled by precision and device
type ("bf16 CPU", "fp32 GPU"), one run a seed. A seed that several processors ran counts once in the pool, by the
first file's run (the round's own condition first, then by path), and the pairs are reported as a paired difference.
The pool's statistics, its lowest minima and a histogram of the minima with the target line are what docs/search.md
shows (`section`), the figure written beside it (results/figures/confirmation-minima.png)."""
from __future__ import annotations

from pathlib import Path

from .assignment import LAST, TARGET, holds, mean_se_sd, on_side, run_summary
from .report import arithmetic_words, confirmations, paired_arithmetics

FIGURE = "confirmation-minima.png"


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
