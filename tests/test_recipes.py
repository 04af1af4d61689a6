"""recipes.py: every step's recipe in one file, and `run_hyperparameters`, the one way a run's whole recipe is
resolved (a step's name, a JSON file or a dict; epochs; precision; smoke)."""
import ast
import json
from pathlib import Path

import pytest

from era_s7 import model, recipes

ROOT = Path(__file__).resolve().parent.parent


def test_each_step_s_recipe_is_the_defaults_with_its_changes():
    assert model.RECIPES is recipes.RECIPES  # the notebooks' `from era_s7.model import RECIPES`
    assert set(recipes.RECIPES) == set(model.MODELS)
    for name, changes in recipes.RECIPES.items():
        hp = recipes.run_hyperparameters(name)
        assert hp == {**recipes.HYPERPARAMETERS, **changes} and list(hp) == list(recipes.HYPERPARAMETERS)
        assert recipes.recipe_changes(hp) == {k: v for k, v in changes.items() if recipes.HYPERPARAMETERS[k] != v}
    assert recipes.run_hyperparameters("Model_3")["batch_size"] == 64


def test_a_recipe_resolves_from_a_name_a_dict_or_a_json_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"lr": 0.05, "epochs": 3}))
    assert recipes.load_recipe(str(path)) == (str(path), {"lr": 0.05, "epochs": 3})
    assert recipes.load_recipe({"lr": 0.05}) == ("given", {"lr": 0.05})
    assert recipes.load_recipe("Model_1") == ("Model_1", recipes.RECIPES["Model_1"])
    from_file = recipes.run_hyperparameters(path, epochs=2, smoke=True, precision="bf16")
    assert from_file == {**recipes.HYPERPARAMETERS, "lr": 0.05, "epochs": 1, "bf16": True, "channels_last": True,
                         **recipes.SMOKE}
    assert recipes.run_hyperparameters(str(path))["epochs"] == 3  # the file's own epochs when none is asked
    with pytest.raises(ValueError, match="neither a model's recipe"):
        recipes.run_hyperparameters("Model_9")
    path.write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        recipes.load_recipe(path)
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        recipes.run_hyperparameters({"lr_max": 1.0})
    with pytest.raises(ValueError, match="precision='fp16'"):
        recipes.run_hyperparameters("Model_3", precision="fp16")


def test_nothing_but_recipes_py_writes_a_step_s_recipe_or_resolves_one():
    """The step recipes' dict and the resolve function are defined once: no other module of the package or script
    assigns RECIPES or HYPERPARAMETERS, or defines run_hyperparameters or check_hyperparameters."""
    owned = {"RECIPES", "HYPERPARAMETERS", "PRECISIONS", "run_hyperparameters", "check_hyperparameters"}
    found = []
    for path in [*(ROOT / "era_s7").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        if path.name == "recipes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign)
                     else [node.name] if isinstance(node, ast.FunctionDef) else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n in owned]
    assert not found, found
