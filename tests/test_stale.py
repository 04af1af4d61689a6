"""`make stale` (era_s7/tools/stale.py) reads every run record under results/, the sweeps' and checks' included."""
from era_s7.results import model_source_sha256, save_json
from era_s7.tools import stale
from era_s7.tools.rounds import CANDIDATES


def sweep_record(candidate, sha, model):
    return dict(name=f"{candidate}-validation", candidate=candidate, split="validation",
                runs=[dict(seed=1, candidate=candidate, model=model, model_source_sha256=sha, history=[])])


def test_a_sweep_run_is_stale_unless_made_by_its_candidates_code_today_or_an_earlier_rounds():
    cls = type(CANDIDATES["dsx41"].build())
    today = model_source_sha256(cls)
    assert stale.sweep_problems(sweep_record("dsx41", today, cls.__name__), "f.json") == []
    assert stale.sweep_problems(sweep_record("dsx41-ema999", today, cls.__name__), "f.json") == []  # its source's
    earlier = next(iter(stale.EARLIER_CODE))
    assert stale.sweep_problems(sweep_record("baseline", earlier, "Model_3"), "f.json") == []
    changed = stale.sweep_problems(sweep_record("dsx41", "0" * 64, cls.__name__), "f.json")
    assert len(changed) == 1 and "seed 1 of dsx41 (DSX)" in changed[0] and "changed under it" in changed[0]
    assert "not in era_s7/tools/rounds.py" in stale.sweep_problems(sweep_record("gone", today, "DSX"), "f.json")[0]


def test_every_record_under_results_is_read_subfolders_included_staging_and_measurements_aside(tmp_path):
    cls = type(CANDIDATES["dsx41"].build())
    nested = tmp_path / "sweeps" / "a" / "bf16" / "dsx41-validation.json"
    save_json(sweep_record("dsx41", "1" * 64, cls.__name__), nested)
    save_json(sweep_record("dsx41", "1" * 64, cls.__name__), tmp_path / ".staging-x" / "sweeps" / "x.json")
    save_json(dict(name="bench-cpu", rows=[]), tmp_path / "bench-cpu.json")
    save_json(dict(name="step9", model="Model_3", model_source_sha256="2" * 64, history=[]), tmp_path / "step9.json")
    found = stale.stale_records(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p, _ in stale.run_records(tmp_path)] == [
        "step9.json", "sweeps/a/bf16/dsx41-validation.json"]
    assert len(found) == 2 and found[0].startswith("step9.json: Model_3 was changed after this run")
    assert found[1].startswith("sweeps/a/bf16/dsx41-validation.json: seed 1 of dsx41")


def test_the_committed_records_are_not_stale(capsys):
    assert stale.main() == 0
    out = capsys.readouterr().out
    assert out.endswith(", 0 stale\n") and int(out.split()[1]) > 40  # the sweeps' records are read
