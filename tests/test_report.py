"""era_s7/report.py: the generated text's building blocks, on records of the test's own."""

import pytest

from era_s7 import report


def run(name, seed, last, model="Model_3", lr=0.1):
    accs = [98.0] * 10 + list(last)
    return dict(name=name, model=model, seed=seed, params=7_000, hyperparameters=dict(lr=lr), total_seconds=1.0,
                history=[dict(epoch=i, test_acc=a, train_acc=99.0) for i, a in enumerate(accs, 1)])


def test_a_spread_means_something_only_over_one_model_and_recipe():
    assert report.one_recipe([run("a", 1, [99.5] * 5), run("a", 2, [99.5] * 5)])
    assert not report.one_recipe([run("a", 1, [99.5] * 5), run("a", 2, [99.5] * 5, lr=0.2)])
    assert list(report.by_name([run("b", 1, [99] * 5), run("a", 1, [99] * 5), run("b", 2, [99] * 5)])) == ["b", "a"]


def test_the_last_epochs_table_marks_each_epoch_against_the_target():
    table = report.last_epochs_table(run("a", 1, [99.5, 99.3, 99.4, 99.6, 99.45])["history"])
    assert "NO" in table.splitlines()[3] and "held on 4 of 5 epochs" in table.splitlines()[-1]


def test_variants_table_counts_the_seeds_that_held_and_pairs_against_the_first_variant():
    runs = [run("base", s, [99.4 + 0.01 * s] * 5) for s in (1, 2)] + [run("other", s, [99.3 + 0.1 * s] * 5)
                                                                      for s in (1, 2)]
    rows = report.variants_table(runs).splitlines()
    assert rows[2].startswith("| base | 2 |") and "| 2/2 |" in rows[2]
    assert rows[3].startswith("| other | 2 |") and "| 1/2 |" in rows[3]


def test_replace_between_keeps_the_markers_and_refuses_without_them():
    text = "a <!-- s -->old<!-- e --> b"
    assert report.replace_between(text, "<!-- s -->", "<!-- e -->", "new") == "a <!-- s -->\nnew\n<!-- e --> b"
    with pytest.raises(ValueError, match="not found"):
        report.replace_between("nothing", "<!-- s -->", "<!-- e -->", "new")
