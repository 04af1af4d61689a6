"""The package's layers, read from its imports (ast, lazy imports inside functions included): the core, era_s7/*.py
(what the notebooks and tests build on), never imports a command, era_s7/tools/*.py; no import circle exists."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "era_s7"


def modules(package: Path) -> dict[str, Path]:
    """Each module by dotted name under era_s7 ("runs", "tools.check") -> its file; __init__ files aside."""
    return {".".join(p.relative_to(package).with_suffix("").parts): p for p in package.rglob("*.py")
            if p.name != "__init__.py"}


def imports(package: Path | None = None) -> dict[str, set[str]]:
    """Each module of era_s7 -> the era_s7 modules it imports, anywhere in its code (relative or absolute)."""
    found_modules = modules(package or PACKAGE)
    graph = {}
    for name, path in found_modules.items():
        here = name.split(".")[:-1]  # the module's package, under era_s7
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - (node.level - 1)]
                elif (node.module or "").split(".")[0] == "era_s7":
                    base, node = [], ast.ImportFrom(module=node.module.partition(".")[2] or None, names=node.names)
                else:
                    continue
                prefix = base + (node.module.split(".") if node.module else [])
                found |= {".".join(prefix)} if node.module else set()
                found |= {".".join(prefix + [a.name]) for a in node.names}  # from . import x: x may be a module
            elif isinstance(node, ast.Import):
                found |= {a.name.partition(".")[2] for a in node.names if a.name.startswith("era_s7.")}
        graph[name] = found & set(found_modules)
    return graph


def is_command(module: str) -> bool:
    return module.startswith("tools.")


def test_the_commands_are_the_tools_package_and_the_core_is_the_rest():
    graph = imports()
    assert {m for m in graph if is_command(m)} == {f"tools.{n}" for n in ("bench", "candidates", "check", "decision",
                                                                           "export", "notebooks", "predict", "profile",
                                                                           "rounds", "search_doc", "stale", "sweep",
                                                                           "sweep_files")}
    assert {"model", "utils", "runs", "training", "machine", "results", "assignment", "data", "learner",
            "loader", "receptive_field", "summary", "report", "confirmation"} <= set(graph)


def test_a_command_is_its_command_line():
    """The learner's check is a core function (learner.check_model, which the notebook your_model calls too), its
    class loader a core module (loader); tools/check.py keeps the command line alone."""
    tree = ast.parse((PACKAGE / "tools" / "check.py").read_text())
    assert [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))] == ["main"]


def test_no_core_module_imports_a_command():
    graph = imports()
    upward = {f"{m} -> {c}" for m in graph if not is_command(m) for c in graph[m] if is_command(c)}
    assert not upward, f"the core imports a command: {sorted(upward)}"


def find_circles(graph: dict[str, set[str]]) -> list[str]:
    state, circles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return circles


def test_no_import_circle():
    circles = find_circles(imports())
    assert not circles, f"import circles: {circles}"


def test_the_layering_test_sees_a_lazy_upward_import(tmp_path):
    """The reading itself: an import inside a function counts, relative or absolute, and a circle through it is
    found."""
    (tmp_path / "tools").mkdir()
    for name, code in {"results.py": "def f():\n    from .tools.check import g\n",
                       "tools/check.py": "from ..results import f\n", "tools/stale.py": "import era_s7.results\n",
                       "tools/__init__.py": "", "utils.py": "from era_s7.tools import stale\n"}.items():
        (tmp_path / name).write_text(code)
    graph = imports(tmp_path)
    assert graph == {"results": {"tools.check"}, "tools.check": {"results"}, "tools.stale": {"results"},
                     "utils": {"tools.stale"}}
    assert find_circles(graph) == ["results -> tools.check -> results"]


def test_utils_exports_exactly_what_the_notebooks_use():
    """utils is the notebooks' import surface: `__all__` is the set of `utils.<name>` their code cells call, each
    name importable, and utils defines nothing of its own."""
    import re

    import nbformat

    from era_s7 import utils

    notebooks = sorted((PACKAGE.parent / "notebooks").rglob("*.ipynb"))
    used = {name for nb in notebooks for cell in nbformat.read(nb, as_version=4).cells if cell.cell_type == "code"
            for name in re.findall(r"\butils\.(\w+)", cell.source)}
    assert len(notebooks) == 7 and set(utils.__all__) == used
    assert all(getattr(utils, name).__module__ != utils.__name__ for name in utils.__all__)
    assert not [n for n in ast.parse((PACKAGE / "utils.py").read_text()).body
                if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign)) and not (
                    isinstance(n, ast.Assign) and [t.id for t in n.targets] == ["__all__"])]
