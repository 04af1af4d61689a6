"""The notebooks' parameters: each bad value named, with what is allowed and how to fix it; epochs above the
assignment's limit allowed, and said in words in the Result block."""
import nbformat
import pytest

from era_s7 import report, results
from era_s7.model import make_model
from era_s7.parameters import ParameterError, check_parameters
from era_s7.results import REPO_ROOT
from era_s7.tools import notebooks

GOOD = dict(seed=1, epochs=15, device="cpu", precision="auto", smoke=False, results_dir=None)


@pytest.mark.parametrize("name, value, fix", [
    ("seed", "abc", "-p seed 7"), ("seed", -1, "-p seed 7"), ("seed", True, "-p seed 7"), ("seed", 1.5, "-p seed 7"),
    ("seeds", "[1, 2]", '-y "seeds: [1, 2, 3]"'), ("seeds", [], '-y "seeds: [1, 2, 3]"'),
    ("seeds", [1, 1], '-y "seeds: [1, 2, 3]"'), ("epochs", 0, "-p epochs 15"), ("epochs", "15", "-p epochs 15"),
    ("device", "gpu", "-p device auto"), ("precision", "fp16", "-p precision auto"), ("smoke", "true", "-p smoke True"),
    ("results_dir", "", "-p results_dir"),
])
def test_a_bad_parameter_is_named_with_what_is_allowed_and_the_fix(name, value, fix):
    parameters = {**GOOD, name: value}
    if name == "seeds":
        parameters.pop("seed")
    with pytest.raises(ParameterError) as err:
        check_parameters(**parameters)
    message = str(err.value)
    assert f"- {name}={value!r} is not allowed: {name} must be " in message
    assert f"`{fix}" in message and f"set `{name} = " in message and message.count("\n- ") == 1


def test_every_bad_parameter_is_named_at_once_and_a_folder_path_must_not_be_a_file(tmp_path):
    file = tmp_path / "results.json"
    file.write_text("{}")
    with pytest.raises(ParameterError, match=r"(?s)parameters not allowed:\n- seed='x'.*\n- results_dir="):
        check_parameters(**{**GOOD, "seed": "x", "results_dir": str(file)})
    check_parameters(**{**GOOD, "results_dir": str(tmp_path)})  # a folder is fine, and so is None


def test_more_epochs_than_the_assignment_allows_is_exploration_and_says_so(capsys):
    check_parameters(**{**GOOD, "epochs": 20})
    assert "breaks the assignment's 15-epoch rule" in capsys.readouterr().out
    check_parameters(**GOOD)
    assert capsys.readouterr().out == ""

    def result(epochs):
        history = [dict(epoch=i, train_loss=0.1, train_acc=98.0, test_loss=0.05, test_acc=99.3, lr=0.01, seconds=1.0)
                   for i in range(1, epochs + 1)]
        return report.render_result(
            results.make_record("unit", make_model("Model_3"), {"epochs": epochs}, 1, history, 3.0))

    assert "**Breaks the assignment's 15-epoch rule**: it trained for 20 epochs, more than the 15 allowed" in result(20)
    assert "15-epoch rule" not in result(15)


@pytest.mark.parametrize("path", [REPO_ROOT / nb for nb in notebooks.NOTEBOOKS], ids=lambda p: p.stem)
def test_every_notebook_checks_every_parameter_of_its_parameters_cell(path):
    cells = nbformat.read(path, as_version=4).cells
    names = [line.split("=")[0].strip() for line in cells[1].source.splitlines() if "=" in line]
    assert "parameters" in cells[1].metadata["tags"] and set(names) <= set(GOOD) | {"seeds"}
    assert "utils.check_parameters(" + ", ".join(f"{n}={n}" for n in names) + ")" in cells[2].source

