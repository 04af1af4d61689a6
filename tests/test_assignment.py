"""era_s7/assignment.py: the assignment's limits, the hold rule, the last-5 statistics and the verdict per rule."""
import math

import pytest

from era_s7 import assignment
from era_s7.assignment import LAST, TARGET


def run(seed, last, before=98.0, epochs=15):
    accs = [before] * (epochs - len(last)) + list(last)
    return dict(seed=seed, history=[dict(epoch=i, test_acc=a, train_acc=99.0) for i, a in enumerate(accs, 1)],
                total_seconds=1.0)


def test_a_run_holds_when_every_one_of_its_last_five_epochs_reaches_the_target():
    assert LAST == 5 and TARGET == 99.4
    assert assignment.holds(run(1, [99.4] * 5))
    assert not assignment.holds(run(1, [99.5, 99.5, 99.39, 99.5, 99.5]))
    assert assignment.holds(run(1, [99.0] + [99.45] * 5))  # an epoch before the window does not count
    assert assignment.holds(run(1, [99.3] * 5), target=99.3)


def test_held_count_asks_the_hold_rule_of_every_run_of_a_record():
    record = dict(runs=[run(1, [99.5] * 5), run(2, [99.39] * 5), run(3, [99.41] * 5)])
    assert assignment.held_count(record) == (2, 3)
    assert assignment.held_count(run(4, [99.5] * 5)) == (1, 1)  # a single-run record


def test_last5_statistics_and_their_spread():
    s = assignment.run_summary(run(7, [99.1, 99.2, 99.3, 99.4, 99.5]))
    assert (s["seed"], s["last5_min"], s["final"]) == (7, 99.1, 99.5) and s["last5_mean"] == pytest.approx(99.3)
    mean, se, sd = assignment.last5_spread([run(1, [99.4] * 5), run(2, [99.6] * 5)])
    assert mean == pytest.approx(99.5) and sd == pytest.approx(math.sqrt(0.02)) and se == pytest.approx(0.1)
    assert math.isnan(assignment.last5_spread([run(1, [99.4] * 5)])[1])


def test_seeds_are_parsed_and_written_back():
    assert assignment.parse_seeds("1-4,9") == [1, 2, 3, 4, 9] and assignment.parse_seeds("3,1") == [1, 3]
    with pytest.raises(ValueError, match="write e.g. '1-8'"):
        assignment.parse_seeds("one")
    assert assignment.seed_list([3, 1, 2]) == "1–3" and assignment.seed_list([1, 3]) == "1, 3"
    assert assignment.seeds_phrase([2]) == "seed 2" and assignment.seeds_phrase([]) == "no seed"


def test_images_short_counts_the_test_images_an_epoch_missed_the_target_by():
    assert assignment.images_short(99.4, 10_000) == 0 and assignment.images_short(99.37, 10_000) == 3


def test_the_verdict_names_each_rule_and_by_how_much():
    record = dict(model="Net", runs=[run(1, [99.5] * 5), run(2, [99.3] * 5)], seeds=[1, 2, 3], params=8_000,
                  hyperparameters=dict(epochs=15), test_images=10_000)
    judged = {name: (ok, why) for name, ok, why in assignment.rules(record)}
    assert judged["fewer than 8,000 parameters"] == (False, "8,000 trainable parameters: 1 too many (the rule is "
                                                            "fewer than 8,000)")
    hold = next(name for name in judged if name.startswith("≥ 99.4"))
    ok, why = judged[hold]
    assert not ok and "held on 1 of 2 seeds (1)" in why and "10 of the 10,000" in why
    lines = assignment.verdict(record)
    assert lines[0].startswith("Verdict: Net fails 2 of 3 rules") and "2 of the 3 seeds asked are done" in lines[0]
    assert not assignment.passes(record)


def test_a_figure_is_printed_on_the_side_of_every_line_its_value_is_on():
    assert assignment.on_side(99.4991) == "99.499" and assignment.on_side(99.3996) == "99.3996"
    assert assignment.on_side(99.456) == "99.46" and assignment.on_side(1.996, 1, assignment.DECISION_LINES) == "1.996"


def test_paired_difference_is_over_the_seeds_both_have():
    diff, se, n = assignment.paired_difference({1: 99.5, 2: 99.6, 3: 99.7}, {1: 99.4, 2: 99.4, 4: 99.0})
    assert n == 2 and diff == pytest.approx(0.15) and se == pytest.approx(0.05)
    one = assignment.paired_difference({1: 99.5}, {1: 99.4})
    assert one[0] == pytest.approx(0.1) and math.isnan(one[1]) and one[2] == 1
    assert math.isnan(assignment.paired_difference({}, {})[0])
