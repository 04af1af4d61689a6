"""pyproject.toml: the one list of dependencies, every one pinned; the runtime ones are all the notebooks' imports need."""
import subprocess
import sys
import tomllib
from importlib.metadata import version

from era_s7.results import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = {name: deps for name, deps in PROJECT["optional-dependencies"].items() if name != "dev"}


def test_every_dependency_is_pinned_and_installed_at_its_pin():
    for requirement in PROJECT["dependencies"] + [r for deps in EXTRAS.values() for r in deps]:
        name, pin = requirement.split("==")  # an unpinned requirement fails here
        assert version(name).split("+")[0] == pin, requirement  # torch's local label (+cu130, +cpu) aside


def test_make_installs_every_extra_from_pyproject_and_nothing_else():
    assert PROJECT["optional-dependencies"]["dev"] == [f"era-s7[{','.join(EXTRAS)}]"]
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "$(STAMP): pyproject.toml" in makefile and '-e ".[dev]"' in makefile
    assert not (REPO_ROOT / "requirements.txt").exists()  # one source of truth


def test_the_notebooks_imports_need_only_the_runtime_dependencies(tmp_path):
    """From another folder (the package is installed, not found beside the code), `from era_s7 import model, utils`
    loads no package of an extra: `pip install era-s7` without extras is enough for the notebooks."""
    extras = {r.split("==")[0].replace("-", "_") for deps in EXTRAS.values() for r in deps}
    loaded = subprocess.run([sys.executable, "-c", "import sys; from era_s7 import model, utils; print(*sys.modules)"],
                            cwd=tmp_path, check=True, capture_output=True, text=True).stdout.split()
    assert not [m for m in loaded if m.split(".")[0] in extras]
