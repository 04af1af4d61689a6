"""Install era_s7 from a clone into a runtime that has its own torch (Colab, Kaggle): the notebooks' set-up cell runs
`python scripts/runtime_setup.py ROOT`.

Every package era_s7 needs that the runtime already has is kept (a pip constraint at its installed version, build
label included), and pip adds only the missing ones. Before pip runs, each kept version and the Python itself are
checked against pyproject.toml's ranges: where one is outside, this prints the package, the version the runtime has,
the range era_s7 needs and the one command that fixes it, and installs nothing (exit 1). Standard library only: it
runs before anything is installed.
"""
import sys

if sys.version_info < (3, 11):  # tomllib, and pyproject.toml's requires-python
    sys.exit(f"era_s7 needs Python >= 3.11; this runtime has {sys.version.split()[0]}: "
             "use a runtime with a newer Python (Colab's and Kaggle's have 3.12 or newer)")

import importlib.metadata
import re
import subprocess
import tempfile
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
except ImportError:  # a bare venv: pip's own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet


def installed(name: str) -> str | None:
    """The runtime's version of a distribution (e.g. "2.11.0+cu128"), or None where it is missing."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def conflicts(project: dict, version_of=installed, python: str | None = None) -> list[tuple[str, str, str]]:
    """(name, the runtime's version, the range era_s7 needs) of each installed requirement of pyproject.toml's
    `project` table outside its range, Python first."""
    python = python or ".".join(map(str, sys.version_info[:3]))
    found = []
    if not SpecifierSet(project.get("requires-python", "")).contains(python, prereleases=True):
        found.append(("Python", python, project["requires-python"]))
    for line in project["dependencies"]:
        requirement = Requirement(line)
        have = version_of(requirement.name)
        if have is not None and not requirement.specifier.contains(have, prereleases=True):
            found.append((requirement.name, have, line[len(requirement.name):].strip()))  # as pyproject.toml writes it
    return found


def fix_command(found: list[tuple[str, str, str]], version_of=installed) -> str:
    """The one command that brings every conflicting package into range (torchvision along with torch, since a
    torchvision build works only beside the torch it was built for); a too-old Python has no pip fix."""
    if any(name == "Python" for name, _, _ in found):
        return "use a runtime with a newer Python (Colab's and Kaggle's have 3.12 or newer)"
    wanted = [f'"{name}{spec}"' for name, _, spec in found]
    if any(name == "torch" for name, _, _ in found) and version_of("torchvision") is not None:
        wanted.append("torchvision")
    return f"%pip install {' '.join(wanted)}, then restart the runtime and run this cell again"


def main(argv=None) -> int:
    root = Path((argv or sys.argv[1:] or ["."])[0]).resolve()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    found = conflicts(project)
    if found:
        for name, have, need in found:
            print(f"error: this runtime has {name} {have}; era_s7 needs {name}{need}")
        print(f"fix: {fix_command(found)}")
        print("nothing was installed")
        return 1
    keep = [f"{name}=={version}" for name in (re.match(r"[A-Za-z0-9._-]+", r).group() for r in project["dependencies"])
            if (version := installed(name)) is not None]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(keep) + "\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          "-c", constraints.name, "-e", str(root)], capture_output=True, text=True)
    if pip.returncode:
        print(pip.stdout + pip.stderr)
        print(f"error: pip could not install era_s7 from {root}: its message is above")
        return 1
    kept = ", ".join(keep) or "none"
    print(f"era_s7 installed from {root}; the runtime's own packages kept: {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
