"""ruff, with pyproject.toml's configuration (line length 120, import order, pyflakes), finds nothing in the
repository: `make test` fails on a finding, and says where (`ruff check --fix` sorts imports)."""
import subprocess
import sys

from era_s7.results import REPO_ROOT


def test_ruff_finds_nothing():
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                           cwd=REPO_ROOT, capture_output=True, text=True)
    assert found.returncode == 0, f"ruff check:\n{found.stdout}{found.stderr}"
