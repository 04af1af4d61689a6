import math
from pathlib import Path

import pytest
import torch

from era_s7 import assignment, machine, recipes, results
from era_s7.receptive_field import receptive_field
from era_s7.summary import count_parameters
from era_s7.tools import decision, rounds, search_doc, sweep, sweep_files


def fake_run(candidate, seed, last5, params=7568):
    history = [dict(epoch=i, test_acc=acc, train_acc=99.0) for i, acc in enumerate([98.0] * 10 + list(last5), 1)]
    return dict(name=f"{candidate}-seed{seed}", candidate=candidate, seed=seed, params=params, history=history,
                total_seconds=1.0)


def made_here(candidate, run):
    """`run` as a one-thread run of the candidate on this CPU would record its code, recipe and condition."""
    asked = sweep.candidate_run(candidate, run["seed"])
    return dict(run, hyperparameters=asked.hp, **machine.condition_of("cpu", 1, asked.hp), torch=torch.__version__,
                model_source_sha256=results.model_source_sha256(type(sweep.candidate_model(candidate))))


def add_validation_runs(files, seeds, runs):
    """`runs(seed)` -> [(candidate, its accuracy on each of the last 5 epochs)]: fake bf16 runs on the validation
    split, added to the sweep files in `files`."""
    for seed in seeds:
        for name, acc in runs(seed):
            sweep_files.add_run(name, "validation", dict(fake_run(name, seed, [acc] * 5), precision="bf16"), files)


def test_paired_difference_on_a_toy_case():
    candidate = {1: 99.5, 2: 99.6, 3: 99.4}
    baseline = {1: 99.4, 2: 99.5, 3: 99.4, 4: 99.0}  # seed 4 has no partner: left out
    mean, se, n = assignment.paired_difference(candidate, baseline)
    assert n == 3
    assert mean == pytest.approx(0.2 / 3)
    diffs = [0.1, 0.1, 0.0]
    sd = math.sqrt(sum((d - 0.2 / 3) ** 2 for d in diffs) / 2)
    assert se == pytest.approx(sd / math.sqrt(3))
    assert math.isnan(assignment.paired_difference({1: 99.5}, {1: 99.4})[1])  # one pair: no standard error


def test_validation_split_holds_out_the_last_training_images_and_never_the_test_set(mnist):
    val = sweep.split_data(mnist, "validation")
    assert len(val["x_train"]) == 50_000 and len(val["x_test"]) == 10_000
    assert torch.equal(val["x_train"], mnist["x_train"][:50_000])
    assert torch.equal(val["x_test"], mnist["x_train"][50_000:])
    assert torch.equal(val["y_test"], mnist["y_train"][50_000:])
    # the scoring images are training images, not test images, and are not trained on
    assert not any(t.data_ptr() == mnist["x_test"].data_ptr() for t in val.values())
    assert val["x_train"].data_ptr() + val["x_train"].numel() * 4 <= val["x_test"].data_ptr()
    assert sweep.split_data(mnist, "test") is mnist
    with pytest.raises(ValueError, match="allowed"):
        sweep.split_data(mnist, "train")


def test_parse_seeds():
    assert assignment.parse_seeds("1-4,9") == [1, 2, 3, 4, 9]
    assert assignment.parse_seeds("3") == [3]
    with pytest.raises(ValueError, match="1-8"):
        assignment.parse_seeds("one")


@pytest.mark.parametrize("name", list(rounds.CANDIDATES))
def test_every_candidate_fits_the_budget_and_sees_the_whole_digit(name):
    model_class, recipe, doc = rounds.CANDIDATES[name]
    model = model_class()
    assert count_parameters(model) < 8000
    assert receptive_field(model)[1] >= 28
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert recipes.run_hyperparameters(recipe)["epochs"] <= 15
    assert len(doc) > 10  # what it changes, and where it comes from


def test_every_round_names_known_candidates_and_a_derived_one_names_its_source():
    for round_, (baseline, members, precision) in rounds.ROUNDS.items():
        assert {baseline, *members} <= set(rounds.CANDIDATES) | set(rounds.DERIVED), round_
    for name, derived in rounds.DERIVED.items():
        assert derived.source in rounds.CANDIDATES and derived.doc
    assert sweep_files.round_dir(Path("r"), "round 6") == Path("r") / rounds.ROUND_DIRS["round 6"] / "bf16"
    assert sweep_files.round_dir(Path("r"), "round 1") == Path("r")


def test_sweep_files_resume_replace_by_seed_and_table_pairs_on_common_seeds(tmp_path, capsys, monkeypatch):
    for seed, acc in [(1, 99.40), (2, 99.50), (3, 99.30)]:
        sweep_files.add_run("baseline", "validation", fake_run("baseline", seed, [acc] * 5), tmp_path)
    for seed, acc in [(1, 99.50), (2, 99.55)]:
        sweep_files.add_run("head2", "validation", fake_run("head2", seed, [acc] * 5, 7856), tmp_path)
    sweep_files.add_run("head2", "validation", fake_run("head2", 2, [99.60] * 5, 7856), tmp_path)  # rerun of seed 2
    assert [r["seed"] for r in sweep_files.load_sweep("head2", "validation", tmp_path)["runs"]] == [1, 2]

    table = search_doc.sweep_table("validation", sweeps_dir=tmp_path)
    head2 = next(line for line in table.splitlines() if line.startswith("| head2"))
    assert "+0.100 ± 0.000 (2 seeds)" in head2 and "2/2" in head2  # seed 3 has no head2 partner
    baseline = next(line for line in table.splitlines() if line.startswith("| baseline"))
    assert "2/3" in baseline  # 99.30 is below 99.4

    # every requested seed is on disk, made as a run here would be (code, recipe, seed, condition): nothing trains
    for c in ("baseline", "head2"):
        on_disk = sweep_files.load_sweep(c, "validation", tmp_path)
        on_disk["runs"] = [made_here(c, r) for r in on_disk["runs"]]
        results.save_json(on_disk, sweep_files.sweep_path(c, "validation", tmp_path))
    monkeypatch.setattr(sweep, "train_seeds", lambda *a, **k: pytest.fail("trained what is on disk"))
    capsys.readouterr()
    sweep.run_sweep(["baseline", "head2"], [1, 2], "validation", jobs=1, sweeps_dir=tmp_path)
    assert "sweep: 0 runs to train (validation split, 1 at a time); 4 already on disk" in capsys.readouterr().out


def test_train_candidate_records_what_produced_it(tiny_data):
    run = sweep.train_candidate("elastic", seed=3, split="validation", epochs=1, data=tiny_data)
    assert run["candidate"] == "elastic" and run["split"] == "validation" and run["seed"] == 3
    assert run["hyperparameters"]["elastic"] == 2.0 and run["threads"] == torch.get_num_threads()
    assert run["device_name"] and len(run["history"]) == 1
    with pytest.raises(ValueError, match="not known"):
        sweep.train_candidate("nope", seed=1, split="validation", data=tiny_data)


def test_a_sweep_file_holds_one_condition(tmp_path):
    run = dict(fake_run("baseline", 1, [99.4] * 5), device_name="Intel Xeon", arithmetic="AVX512", threads=1)
    sweep_files.add_run("baseline", "validation", run, tmp_path)
    sweep_files.add_run("baseline", "validation", dict(run, seed=2), tmp_path)
    with pytest.raises(ValueError, match="results depend on each"):
        sweep_files.add_run("baseline", "validation", dict(run, seed=3, threads=2), tmp_path)
    with pytest.raises(ValueError, match="bf16"):  # precision and memory format are part of the condition
        sweep_files.add_run("baseline", "validation",
                            dict(run, seed=3, precision="bf16", memory_format="channels_last"), tmp_path)
    with pytest.raises(ValueError, match="AVX2"):  # the same brand, other kernels: another condition
        sweep_files.add_run("baseline", "validation", dict(run, seed=3, arithmetic="AVX2"), tmp_path)
    saved = sweep_files.load_sweep("baseline", "validation", tmp_path)
    assert len(saved["runs"]) == 2
    assert saved["condition"] == dict(device_name="Intel Xeon", arithmetic="AVX512", threads=1, precision="fp32",
                                      memory_format="contiguous")


def test_a_sweep_refuses_another_condition_before_it_trains(tmp_path, monkeypatch):
    run = dict(fake_run("baseline", 1, [99.4] * 5), device_name=machine.device_name(torch.device("cpu")),
               arithmetic="SSE2", threads=1)  # made on a CPU of the same name and other kernels (not this one's)
    sweep_files.add_run("baseline", "validation", run, tmp_path)
    monkeypatch.setattr(sweep, "train_seeds", lambda *a, **k: pytest.fail("trained despite another condition"))
    for seeds in ([1, 2], [1]):  # seed 1's run, of another condition, does not stand in for one made here either
        with pytest.raises(ValueError, match="holds runs made under .*SSE2.*another folder"):
            sweep.run_sweep(["baseline"], seeds, "validation", jobs=1, sweeps_dir=tmp_path)


def test_a_sweep_refuses_to_replace_a_run_made_by_other_code_or_recipe(tmp_path, monkeypatch):
    run = made_here("baseline", fake_run("baseline", 1, [99.4] * 5))
    other_recipe = dict(run, hyperparameters=dict(run["hyperparameters"], lr=0.3))
    sweep_files.add_run("baseline", "validation", other_recipe, tmp_path)
    monkeypatch.setattr(sweep, "train_seeds", lambda *a, **k: pytest.fail("trained over a run on disk"))
    with pytest.raises(ValueError, match="holds a run of seed 1 made by other code or another recipe .*replace it"):
        sweep.run_sweep(["baseline"], [1], "validation", jobs=1, sweeps_dir=tmp_path)
    assert sweep_files.load_sweep("baseline", "validation", tmp_path)["runs"][0]["hyperparameters"]["lr"] == 0.3  # kept


def test_a_derived_candidate_is_read_from_its_source_runs(tmp_path):
    runs = []
    for seed in (1, 2):
        run = fake_run("dsx41", seed, [99.4] * 5)
        run["hyperparameters"] = dict(ema=0.998, ema_also=0.999)
        for row in run["history"]:
            row.update(ema_also_test_acc=row["test_acc"] + 0.01, ema_also_test_loss=0.02, test_loss=0.03)
        sweep_files.add_run("dsx41", "validation", run, tmp_path)
        runs.append(run)
    assert sweep.derive_runs("dsx41", "validation", tmp_path) == ["dsx41-ema999"]
    derived = sweep_files.load_sweep("dsx41-ema999", "validation", tmp_path)["runs"]
    assert [r["seed"] for r in derived] == [1, 2] and derived[0]["derived_from"] == "dsx41-seed1"
    assert derived[0]["hyperparameters"] == dict(ema=0.999, ema_also=0.0)
    assert [r["test_acc"] for r in derived[0]["history"]] == [r["ema_also_test_acc"] for r in runs[0]["history"]]
    assert sweep.derive_runs("dsx41", "validation", tmp_path) == []  # idempotent


def test_an_absent_device_fails_before_anything_runs(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="not present"):
        sweep.run_sweep(["baseline"], [1], "validation", jobs=1, sweeps_dir=tmp_path, device="cuda")
    assert not list(tmp_path.iterdir())


def test_an_unknown_precision_fails_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="precision='fp16'; allowed"):
        sweep.run_sweep(["m3"], [1], "validation", jobs=1, sweeps_dir=tmp_path, precision="fp16")
    assert not list(tmp_path.iterdir())
    assert sweep_files.precision_dir(tmp_path, "bf16") == tmp_path / "bf16"
    assert sweep_files.precision_dir(tmp_path, "fp32") == tmp_path


def test_search_doc_tables_are_what_the_sweep_files_say(tmp_path):
    doc = tmp_path / "search.md"
    doc.write_text(search_doc.SEARCH_DOC.read_text())
    for split in sweep.SPLITS:
        search_doc.update_search_doc(split, doc)
    assert doc.read_text() == search_doc.SEARCH_DOC.read_text()  # regenerated from results/sweeps/: nothing changes


def test_decision_rule_takes_the_largest_gain_of_at_least_two_standard_errors_on_eight_seeds(tmp_path):
    noise = [0.00, 0.02, -0.02, 0.01, -0.01, 0.03, -0.03, 0.00]
    for seed, e in enumerate(noise, 1):
        sweep_files.add_run("baseline", "validation", fake_run("baseline", seed, [99.30 + e] * 5), tmp_path)
        sweep_files.add_run("lr02", "validation", fake_run("lr02", seed, [99.35 + e + noise[-seed] / 2] * 5), tmp_path)
        sweep_files.add_run("ls0", "validation", fake_run("ls0", seed, [99.40 + e + 12 * noise[seed - 1]] * 5),
                            tmp_path)
        if seed <= 7:  # the biggest gain, but on too few seeds
            sweep_files.add_run("head2", "validation", fake_run("head2", seed, [99.60 + e] * 5), tmp_path)
    name, diff, se, n = decision.winner("validation", tmp_path)
    # ls0 gains more (+0.10) but its differences scatter so much that +0.10 is under 2 standard errors
    assert assignment.paired_difference({s: 99.40 + e + 12 * e for s, e in enumerate(noise, 1)},
                                   {s: 99.30 + e for s, e in enumerate(noise, 1)})[0] == pytest.approx(0.10)
    assert (name, n) == ("lr02", 8) and diff == pytest.approx(0.05) and diff >= 2 * se
    assert "**lr02**" in decision.decision("validation", tmp_path)
    assert decision.winner("validation", tmp_path, min_se=1000) is None


def test_the_staged_rule_screens_on_four_seeds_qualifies_on_eight_and_replicates_on_fresh_ones():
    noise = [0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0] * 2
    base = {s: 99.40 for s in range(1, 17)}
    steady = {s: 99.45 + e for s, e in enumerate(noise, 1)}  # +0.05, scatter 0.013: passes every stage
    assert decision.stage({s: steady[s] for s in (1, 2, 3)}, base) == ("screening (3 of seeds 1-4 paired)", "1-4")
    reached, todo = decision.stage({s: steady[s] for s in range(1, 5)}, base)
    assert reached.startswith("passed seeds 1-4 (+0.050") and todo == "1-8"
    assert decision.stage({s: steady[s] for s in range(1, 9)}, base)[1] == "9-16"
    reached, todo = decision.stage(steady, base)
    assert reached.startswith("replicated (seeds 9-16 (+0.050") and todo is None
    # a gain that is not positive stops at the screen, whatever seeds 5-8 would say
    assert decision.stage({**steady, 1: 99.0}, base) == (
        "stopped: -0.065 ± 0.112 on seeds 1-4, where the rule needs a positive gain", None)
    # positive on 1-4 but scattered: under 2 SE on seeds 1-8 stops it
    scattered = {s: 99.41 + 3 * e for s, e in enumerate(noise, 1)}
    reached, seeds = decision.stage(scattered, base)
    assert reached.startswith("stopped: +0.010") and seeds is None
    # qualified on 1-8, not replicated on 9-16
    assert decision.stage({**steady, **{s: 99.40 for s in range(9, 17)}}, base)[0].startswith("stopped: +0.000 ± 0.000 "
                                                                                           "on seeds 9-16")


def test_the_staged_rule_names_the_next_sweeps_the_stage_nearest_adoption_first(tmp_path):
    files = sweep_files.round_dir(tmp_path, "round 5")  # dsx41 against dsx41-rot0 and dsx41-ls0, in bf16
    noise = [0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0]
    add_validation_runs(files, range(1, 9), lambda seed: [("dsx41", 99.40), ("dsx41-rot0", 99.45 + noise[seed - 1])]
                        + [("dsx41-ls0", 99.5)] * (seed < 3))
    said = decision.staged_decision("validation", tmp_path, "round 5")
    assert "- `dsx41-rot0`: passed seeds 1-8 (+0.050" in said and "- `dsx41-ls0`: screening (2 of seeds 1-4" in said
    assert said.endswith('Next: `make sweep CANDIDATE="dsx41 dsx41-rot0" SEEDS=9-16 PRECISION=bf16`; '
                         'then `make sweep CANDIDATE="dsx41 dsx41-ls0" SEEDS=1-4 PRECISION=bf16`')


def test_precision_table_pairs_bf16_with_fp32_on_the_seeds_both_have(tmp_path):
    for seed, (fp32, bf16) in enumerate([(99.40, 99.42), (99.44, 99.44), (99.38, 99.42)], 1):
        sweep_files.add_run("dsx40", "validation", dict(fake_run("dsx40", seed, [fp32] * 5), precision="fp32"),
                            tmp_path)
        sweep_files.add_run("dsx40", "validation", dict(fake_run("dsx40", seed, [bf16] * 5), precision="bf16"),
                      sweep_files.precision_dir(tmp_path, "bf16"))
    sweep_files.add_run("dsx40", "validation", dict(fake_run("dsx40", 9, [90.0] * 5), precision="bf16"),
                  sweep_files.precision_dir(tmp_path, "bf16"))  # no fp32 partner: left out
    row = search_doc.precision_table("validation", ["dsx40"], tmp_path).splitlines()[-1]
    # differences 0.02, 0.00, 0.04: mean 0.02, standard error 0.02 / sqrt(3) = 0.012
    assert row.startswith("| dsx40 | 3 | none | 3 | 99.407 | 99.427 | +0.020 ± 0.012 | +1.7 |")
    # a run that did not learn (at chance) measures no precision's accuracy: named, and its seed left out of the pair
    sweep_files.add_run("dsx40", "validation", dict(fake_run("dsx40", 4, [9.9] * 5), precision="fp32"), tmp_path)
    sweep_files.add_run("dsx40", "validation", dict(fake_run("dsx40", 4, [99.5] * 5), precision="bf16"),
                  sweep_files.precision_dir(tmp_path, "bf16"))
    row = search_doc.precision_table("validation", ["dsx40"], tmp_path).splitlines()[-1]
    assert row.startswith("| dsx40 | 4 | fp32 seed 4 | 3 | 99.407 | 99.427 | +0.020 ± 0.012 | +1.7 |")


def test_the_noscale_plan_computes_what_the_separable_plan_of_its_width_computes():
    """dsx42-noscale's claim: BN's scale and shift fold exactly into the next conv (depthwise weights and a bias;
    the head's weights and bias), so a DSX 42 wide with positive BN scales (step 3's are 0.60-0.91 at least) is a
    DSXNoScale with other weights. (A negative scale would not commute with the max-pool.)"""
    from era_s7.model import DSX
    from era_s7.tools.candidates import DSXNoScale
    torch.manual_seed(0)
    dsx, noscale = DSX(pre=(42,), post=(42,) * 3).eval(), DSXNoScale(42).eval()
    norms = [m for m in dsx.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.weight.data.uniform_(0.5, 2.0), bn.bias.data.normal_(), bn.running_mean.data.normal_()
        bn.running_var.data.uniform_(0.5, 2.0)
    convs, targets = [m for m in dsx.modules() if isinstance(m, torch.nn.Conv2d)], \
        [m for m in noscale.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for bn, target in zip(norms, [m for m in noscale.modules() if isinstance(m, torch.nn.BatchNorm2d)]):
            target.running_mean.copy_(bn.running_mean), target.running_var.copy_(bn.running_var)
        for i, (conv, target) in enumerate(zip(convs, targets)):
            if i in (1, 3, 5, 7):  # depthwise, after BN i // 2: its scale into the filter, its shift into a bias
                bn = norms[i // 2]
                target.weight.copy_(conv.weight * bn.weight.view(-1, 1, 1, 1))
                target.bias.copy_(bn.bias * conv.weight.sum((1, 2, 3)))
            elif i == 9:  # the head, after the last BN and the GAP
                target.weight.copy_(conv.weight * norms[-1].weight.view(1, -1, 1, 1))
                target.bias.copy_(conv.weight[:, :, 0, 0] @ norms[-1].bias)
            else:
                target.weight.copy_(conv.weight)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(noscale(x), dsx(x), atol=1e-4, rtol=1e-4)
    from era_s7.model import Model_3
    assert count_parameters(noscale) == 7958 and count_parameters(DSXNoScale(41)) == count_parameters(Model_3()) - 211


def test_round_6s_test_confirmation_is_its_qualifier_built_as_model_3():
    """model3-b64-nodecay-ls005 must compute what dsx41-b64-nodecay-ls005 did: the same recipe and, from every
    seed, the same modules with the same initial weights, only under Model_3's name (so the notebooks may reuse it)."""
    qualifier = rounds.CANDIDATES["dsx41-b64-nodecay-ls005"]
    confirmation = rounds.CANDIDATES["model3-b64-nodecay-ls005"]
    assert confirmation.recipe == qualifier.recipe
    assert rounds.TEST_CONFIRMATIONS["round 6"] == ["model3-b64-nodecay-ls005"]
    for seed in (1, 2):
        torch.manual_seed(seed)
        a = qualifier.build()
        torch.manual_seed(seed)
        b = confirmation.build()
        assert type(b).__name__ == "Model_3" and [str(m) for m in a.children()] == [str(m) for m in b.children()]
        assert a.state_dict().keys() == b.state_dict().keys()
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_a_rounds_test_confirmation_gets_a_table_in_its_folder_and_no_decision(tmp_path, monkeypatch):
    monkeypatch.setitem(rounds.TEST_CONFIRMATIONS, "round 6", ["dsx41-b64"])
    files = sweep_files.round_dir(tmp_path, "round 6")
    for seed in (1, 2):
        sweep_files.add_run("dsx41-b64", "test", fake_run("dsx41-b64", seed, [99.5] * 5), files)
    label = "test split, round 6"
    assert search_doc.search_doc_sections("test")[label] == ("round 6", "dsx41", ["dsx41", "dsx41-b64"], "bf16")
    doc = tmp_path / "search.md"
    doc.write_text(f"{search_doc.SEARCH_START.format(section=label)}\nold\n{search_doc.SEARCH_END}\n")
    search_doc.update_search_doc("test", doc, tmp_path)
    text = doc.read_text()
    assert "| dsx41-b64 | " in text and "| 2/2 |" in text and "Decision rule" not in text and "old" not in text


def test_once_a_candidate_replicates_the_round_adopts_it_and_names_its_test_confirmation(tmp_path):
    files = sweep_files.round_dir(tmp_path, "round 6")
    noise = [0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0] * 2
    add_validation_runs(files, range(1, 17), lambda seed: [("dsx41", 99.40), ("dsx41-b64-nodecay-ls005",
                                                             99.46 + noise[seed - 1])]
                        + [("dsx41-b64", 99.45)] * (seed < 5))
    said = decision.staged_decision("validation", tmp_path, "round 6")
    assert "- `dsx41-b64-nodecay-ls005`: replicated" in said and "- `dsx41-b64`: passed seeds 1-4" in said
    assert "Next:" not in said and said.endswith(
        "The round adopts `dsx41-b64-nodecay-ls005`; the others' next stages are not run. The test set scores it: "
        '`make sweep CANDIDATE="model3-b64-nodecay-ls005" SEEDS=1-20 SPLIT=test PRECISION=bf16 '
        'DIR=results/sweeps/xeon-amx`')


def test_model_3s_recipe_is_what_round_6_adopted_and_its_test_confirmation_ran():
    adopted = recipes.run_hyperparameters("Model_3")
    assert adopted == recipes.run_hyperparameters(rounds.CANDIDATES["model3-b64-nodecay-ls005"].recipe)
    assert adopted == recipes.run_hyperparameters(rounds.CANDIDATES["dsx41-b64-nodecay-ls005"].recipe)
    assert recipes.run_hyperparameters(rounds.CANDIDATES["dsx41"].recipe) != adopted  # rounds 1-6 keep their recipe


def test_the_command_refuses_a_file_it_would_change_with_an_error_not_a_traceback(tmp_path, capsys):
    run = dict(fake_run("baseline", 1, [99.4] * 5), device_name="Intel Xeon", arithmetic="AVX512", threads=1)
    sweep_files.add_run("baseline", "validation", run, tmp_path)
    assert sweep.main(["baseline", "--seeds", "1", "--jobs", "1", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "holds runs made under" in err and "--table prints its tables" in err
    assert "Traceback" not in err


def test_round_7_decides_on_the_paired_minimum_and_stops_a_candidate_whose_mean_is_lower():
    """Round 7's staged rule (decision.MEASURES): the gain is in the last-5 minimum; from seeds 1-8 on, the paired
    last-5 mean must not be lower."""
    noise = [0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0] * 2
    base = {s: 99.40 for s in range(1, 17)}
    mins = {s: 99.45 + e for s, e in enumerate(noise, 1)}
    higher, lower = ({s: 99.50 for s in range(1, 17)}, {s: 99.50 for s in range(1, 17)}), \
        ({s: 99.48 for s in range(1, 17)}, {s: 99.50 for s in range(1, 17)})
    reached, todo = decision.stage(mins, base, guard=higher, measure="min")
    assert reached.startswith("replicated (seeds 9-16 (last-5 min +0.050") and "last-5 mean +0.000" in reached
    reached, todo = decision.stage(mins, base, guard=lower, measure="min")
    assert reached == ("stopped: last-5 min +0.050 ± 0.005 on seeds 1-8, last-5 mean -0.020, where the rule needs "
                       "the mean not lower") and todo is None
    assert decision.MEASURES["round 7"] == "min" and "round 7" in decision.STAGED_ROUNDS


def test_round_7_candidates_keep_learning_until_the_last_epoch():
    """Issue 41's admission rule: a round-7 candidate whose convolutions' learning rate falls below 1 % of its peak
    before the last epoch begins is out (a run that freezes its weights would meet the letter of the rule)."""
    from era_s7 import device_step
    baseline, members, _ = rounds.ROUNDS["round 7"]
    steps = 782  # an epoch of the validation split at batch 64
    for c in [baseline, *members]:
        hp = sweep.candidate_run(c, 1).hp
        torch.manual_seed(1)
        model = sweep.candidate_model(c)
        if hp["lookahead"]:  # Lookahead leaves the schedule as it is: read the SGD's own
            hp = dict(hp, lookahead=0)
        lrs, _ = device_step.schedule_table(model, hp, steps)
        conv = lrs[:, 0]  # group 0: the convolutions' weights (decay_groups)
        assert conv[(hp["epochs"] - 1) * steps] >= 0.01 * conv.max(), c


def test_a_round_s_decision_counts_only_the_seeds_it_ran(tmp_path, monkeypatch):
    """rounds.ROUND_SEEDS: a candidate's later seeds in a shared file are a later round's, not this one's: round 3
    chose dsx40, while dsx41's seeds 5-8 (round 4's) would name dsx41 on 8 seeds."""
    from era_s7.tools import decision
    files = sweep.round_dir(tmp_path, "round 3")
    for seed in range(1, 17):
        sweep.add_run("m3", "validation", fake_run("m3", seed, [99.40] * 5), files)
        sweep.add_run("dsx40", "validation", fake_run("dsx40", seed, [99.44 + (seed % 2) * 0.01] * 5), files)
    for seed in range(1, 9):
        sweep.add_run("dsx41", "validation", fake_run("dsx41", seed, [99.47 + (seed % 2) * 0.01] * 5), files)
    assert decision.winner("validation", tmp_path, "round 3")[0] == "dsx40"
    monkeypatch.setitem(decision.ROUND_SEEDS, "round 3", {})
    assert decision.winner("validation", tmp_path, "round 3")[0] == "dsx41"
