"""The story's numbers against the records (issue 42).

- **Rounding never changes a verdict**: in every generated block (the README's, each notebook's Result block, the
  search's comparison of arithmetics), no printed figure is the rounding of a record's value that lies on the other
  side of a target (99.4 %, the search's 99.50 %) from the printed one: 99.4991 printed as 99.50 fails.
- **No stale prose**: in the hand-written text of README.md and docs/search.md, every hold count ("N of M" beside
  hold/held) and every accuracy (a figure in the 90s followed by %) names its record in the same paragraph, list item
  or table row (a path `results/...json`, a folder `results/sweeps/.../`, or a link to a notebook, whose record is
  results/<notebook>.json; with `commit <sha>`, also the file as it was at that commit), and matches it: the count is
  one of the record's (all runs, or a variant's runs on a range of consecutive seeds), the accuracy one of its
  values at the printed digits (an epoch, a run's last-5 min or mean, best, final, or a mean or minimum over such runs).
- docs/research-log.md is history: each of its sections with such numbers names the commit they were measured at.
"""
from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import nbformat
import pytest

from era_s7.assignment import LAST, TARGET, VERDICT_LINES, runs_of

REPO = Path(__file__).resolve().parents[1]
GENERATED = re.compile(r"<!-- ([\w-]+):start[^>]*-->.*?<!-- \1:end -->", re.S)
RECORD = re.compile(r"(?:\.\./)*(results/[\w./-]+?\.json|results/sweeps/[\w./-]*/)")
NOTEBOOK = re.compile(r"([\w-]+)\.ipynb")
COMMIT = re.compile(r"commit\s+`?([0-9a-f]{7,40})\b")
# an accuracy: a figure in the 90s followed by % (or the first of a range "a–b %")
ACCURACY = re.compile(r"(?<![\d.+−-])(9\d\.\d{1,3})(?=\s?%|–9\d\.\d+\s?%)|(?<=–)(9\d\.\d{1,3})(?=\s?%)")
HOLD_COUNT = re.compile(r"(?<![\d,.])(\d+) of (?:the )?(\d+)(?![\d,.])")
NOT_A_MEASUREMENT = re.compile(r"(≥|≤|<|>|under|below|above|target|goal|at least)\W{0,4}$")


def git_file(commit: str, path: str) -> str | None:
    """The file at a commit; None where the commit lacks it. A shallow clone has no history to read: the test skips
    there, saying so, rather than failing on numbers it cannot check."""
    out = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0 and subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=REPO,
                                              capture_output=True, text=True).stdout.strip() == "true":
        pytest.skip(f"a shallow clone: commit {commit}, which the prose cites, is not here (git fetch --unshallow)")
    return out.stdout if out.returncode == 0 else None


@lru_cache(maxsize=None)
def load(path: str, commit: str | None = None) -> tuple[dict, ...]:
    """The records a citation names: a file, or every file under a folder; at a commit, as it was then."""
    if commit:
        if path.endswith("/"):
            listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit, path], cwd=REPO,
                                    capture_output=True, text=True).stdout.split()
            return tuple(json.loads(git_file(commit, p)) for p in listed if p.endswith(".json"))
        text = git_file(commit, path)
        return (json.loads(text),) if text else ()
    target = REPO / path
    if target.is_dir():
        return tuple(json.loads(p.read_text()) for p in sorted(target.rglob("*.json")))
    return (json.loads(target.read_text()),) if target.is_file() else ()


def cited(text: str) -> list[tuple[str, str | None]]:
    """(path, commit or None) of each record a piece of text names."""
    commits = COMMIT.findall(text)
    paths = RECORD.findall(text)
    paths += [f"results/{stem}.json" for stem in NOTEBOOK.findall(text) if (REPO / f"results/{stem}.json").is_file()]
    # at each commit named, or today
    return [(p, c) for p in dict.fromkeys(paths) for c in dict.fromkeys([*commits, None])]


def last5(run: dict) -> list[float]:
    return [h["test_acc"] for h in run["history"][-LAST:]]


def groups(records, ranges: bool = True) -> list[list[dict]]:
    """Every set of runs a number may be about: a record's runs; a variant's (same name or candidate); and of each
    (`ranges`), the runs on every range of consecutive seeds."""
    out = []
    for record in records:
        runs = [r for r in runs_of(record) if r.get("history")]
        by = {}
        for r in runs:
            by.setdefault(r.get("candidate") or re.sub(r"-seed\d+$", "", r["name"]), []).append(r)
        for group in [runs, *by.values()]:
            group = sorted(group, key=lambda r: r["seed"])
            out += ([group[i:j] for i in range(len(group)) for j in range(i + 1, len(group) + 1)] if ranges
                    else [group])
    return out


def values(records, ranges: bool = True) -> tuple[set[float], set[float]]:
    """(every value of the records: epochs and aggregates; the aggregates alone: means over epochs or runs)."""
    exact, aggregate = set(), set()
    for group in groups(records, ranges):
        for r in group:
            for h in r["history"]:
                exact.update(h[k] for k in ("test_acc", "raw_test_acc", "train_acc") if k in h)
            aggregate.add(statistics.mean(last5(r)))
            raw = [h["raw_test_acc"] for h in r["history"][-LAST:] if "raw_test_acc" in h]
            exact.update([min(last5(r)), max(h["test_acc"] for h in r["history"]), *raw[-1:]])
        if len(group) > 1:
            aggregate.update([statistics.mean(statistics.mean(last5(r)) for r in group),
                              statistics.mean(min(last5(r)) for r in group),
                              statistics.mean(r["history"][-1]["test_acc"] for r in group)])
            exact.add(min(min(last5(r)) for r in group))
    return exact | aggregate, aggregate


def printed_whole(records) -> set[float]:
    """What the generators print of a record as it is (no rounding): each run's final, best and lowest of its last 5
    epochs, and, of a single run, each of its last 5."""
    out = set()
    for record in records:
        runs = [r for r in runs_of(record) if r.get("history")]
        for r in runs:
            out.update([r["history"][-1]["test_acc"], max(h["test_acc"] for h in r["history"]), min(last5(r))])
            out.update(last5(r) if len(runs) == 1 else [])
    return out


def hold_counts(records) -> set[tuple[int, int]]:
    return {(sum(min(last5(r)) >= TARGET for r in g), len(g)) for g in groups(records)}


def units(text: str) -> list[str]:
    """Paragraphs, list items and table rows, outside generated blocks, code and comments."""
    text = GENERATED.sub("\n\n", text)
    text = re.sub(r"```.*?```|<!--.*?-->", "\n\n", text, flags=re.S)
    return [u for para in re.split(r"\n\s*\n", text)
            for u in re.split(r"\n(?=\s*(?:[-*] |\d+\. |\|))", para) if u.strip()]


def measured(unit: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The accuracies and the hold counts a unit states (targets and thresholds aside)."""
    accuracies = [m.group(1) or m.group(2) for m in ACCURACY.finditer(unit)
                  if not NOT_A_MEASUREMENT.search(unit[:m.start()]) and (m.group(1) or m.group(2)) != f"{TARGET}"]
    counts = [(int(m.group(1)), int(m.group(2))) for m in HOLD_COUNT.finditer(unit)
              if re.search(r"hold|held", unit[max(0, m.start() - 45):m.end() + 25])
              and not NOT_A_MEASUREMENT.search(unit[:m.start()]) and int(m.group(1)) <= int(m.group(2))]
    return accuracies, counts


def matches(printed: str, known: set[float]) -> bool:
    digits = len(printed.split(".")[1])
    return any(abs(round(v, digits) - float(printed)) < 1e-9 for v in known)


def prose_problems(path: str) -> list[str]:
    problems = []
    for unit in units((REPO / path).read_text()):
        accuracies, counts = measured(unit)
        if not accuracies and not counts:
            continue
        where = f"{path}: {' '.join(unit.split())[:160]!r}"
        sources = cited(unit)
        if not sources:
            problems.append(f"{where}: states {accuracies + [f'{h} of {n}' for h, n in counts]} and names no record")
            continue
        records = [r for p, c in sources for r in load(p, c)]
        if not records:
            problems.append(f"{where}: names {sources}, which holds no record")
            continue
        known, _ = values(records)
        problems += [f"{where}: {a} % is none of {sources}'s values" for a in accuracies if not matches(a, known)]
        counted = hold_counts(records)
        problems += [f"{where}: '{h} of {n}' is no hold count of {sources}" for h, n in counts if (h, n) not in counted]
    return problems


@pytest.mark.parametrize("path", ["README.md", "docs/search.md"])
def test_hand_written_numbers_name_their_record_and_match_it(path):
    problems = prose_problems(path)
    assert not problems, "\n".join(problems)


def test_the_research_log_cites_the_commit_of_its_numbers():
    """History keeps the numbers of its day: every section (under a heading) that states hold counts or accuracies
    names the commit they were measured at."""
    text = GENERATED.sub("", (REPO / "docs/research-log.md").read_text())
    missing = []
    for section in re.split(r"\n(?=#+ )", text):
        stated = [u for u in units(section) if any(measured(u))]
        if stated and not COMMIT.search(section):
            missing.append(section.splitlines()[0][:100])
    assert not missing, f"sections with numbers and no `commit <sha>`: {missing}"


def test_the_prose_checks_catch_a_stale_number_and_a_missing_source(tmp_path, monkeypatch):
    """The checker itself: a hold count or an accuracy with no record, or one its record does not hold, is caught;
    targets are not measurements."""
    assert measured("holds on 19 of 20 seeds, mean 99.515 % (target: ≥ 19 of 20, mean ≥ 99.50 %)") == (
        ["99.515"], [(19, 20)])
    assert measured("7,864 of 8,000 parameters; higher on 7 of 8 seeds") == ([], [])
    record = dict(runs=[dict(name=f"x-seed{s}", seed=s, history=[dict(test_acc=a, train_acc=99.0)] * 15)
                        for s, a in [(1, 99.5), (2, 99.3), (3, 99.45)]])
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps(record))
    (tmp_path / "doc.md").write_text("It holds on 2 of 3 seeds, mean 99.417 % (`results/x.json`).\n\n"
                                     "It holds on 3 of 3 seeds (`results/x.json`).\n\nMean 99.42 %, no source.\n\n"
                                     "On seeds 1–2 it held on 1 of 2, lowest 99.30 % (`results/x.json`).\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    load.cache_clear()
    try:
        problems = prose_problems("doc.md")
    finally:
        load.cache_clear()
    assert len(problems) == 2 and "'3 of 3' is no hold count" in problems[0] and "names no record" in problems[1]


# --- rounding never changes a verdict ---------------------------------------------------------------------------

def generated_blocks() -> list[tuple[str, str, list[tuple[str, str | None]]]]:
    """(where, the block's text, the records it is generated from) of every generated block on the story's pages."""
    blocks = []
    readme = (REPO / "README.md").read_text()
    for m in GENERATED.finditer(readme):
        blocks.append((f"README.md {m.group(1)}", m.group(0), cited(m.group(0))))
    for nb_path in sorted((REPO / "notebooks").rglob("*.ipynb")):
        source = nbformat.read(nb_path, as_version=4).cells[0].source
        for m in GENERATED.finditer(source):
            blocks.append((f"{nb_path.relative_to(REPO)} {m.group(1)}", m.group(0),
                           cited(m.group(0)) + [(f"results/{nb_path.stem}.json", None)]))
    search = (REPO / "docs/search.md").read_text()
    for m in GENERATED.finditer(search):
        if "every arithmetic" in m.group(0)[:120]:  # confirmation.arithmetics_table's block
            blocks.append(("docs/search.md every arithmetic", m.group(0), cited(m.group(0))))
    return blocks


def flips(text: str, aggregates: set[float], lines=VERDICT_LINES) -> list[str]:
    """Printed figures that are the rounding of a record's aggregate on the other side of a line."""
    found = []
    for printed in set(re.findall(r"(?<![\d.])9\d\.\d+", text)) - {str(line) for line in lines}:  # the targets
        p, digits = float(printed), len(printed.split(".")[1])
        for v in aggregates:
            if abs(round(v, digits) - p) < 1e-9 and any((v >= line) != (p >= line) for line in lines):
                found.append(f"{printed} printed for {v!r}")
    return found


def test_rounding_never_puts_a_generated_figure_on_the_other_side_of_a_target():
    blocks = generated_blocks()
    assert len(blocks) >= 10, [b[0] for b in blocks]
    problems = []
    for where, text, sources in blocks:
        for line in text.splitlines():  # a table row or a sentence: the records it names, else its block's
            records = [r for p, c in (cited(line) or sources) for r in load(p, c)]
            _, aggregates = values(records, ranges=False)
            problems += [f"{where}: {f}" for f in flips(line, aggregates)  # unless the record holds it as printed
                         if not any(abs(v - float(f.split()[0])) < 1e-9 for v in aggregates | printed_whole(records))]
    assert not problems, "\n".join(problems)


def test_the_rounding_check_catches_a_flip():
    assert flips("mean of the last-5 means 99.50 %", {99.4991}) == ["99.50 printed for 99.4991"]
    assert flips("mean of the last-5 means 99.499 %", {99.4991}) == []
    assert flips("last-5 min 99.40", {99.3996}) and not flips("last-5 min 99.3996", {99.3996})
