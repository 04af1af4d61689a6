"""The package's layers, read from its imports (ast, lazy imports inside functions included): the core (what the
notebooks and tests build on) never imports a command, and no import circle exists."""
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "era_s7"
# the commands: each is run as `python -m era_s7.<name>` (or by make), and may import the core and other commands
COMMANDS = {"bench", "candidates", "check", "export", "notebooks", "predict", "profile", "stale", "sweep"}


def imports() -> dict[str, set[str]]:
    """Each module of era_s7 -> the era_s7 modules it imports, anywhere in its code."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    graph = {}
    for name in modules:
        found = set()
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y / from . import x, y
                found |= {node.module} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("era_s7"):
                found |= {node.module.split(".")[1]} if "." in node.module else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("era_s7.")}
        graph[name] = found & modules
    return graph


def test_every_command_is_a_module_of_the_package():
    assert COMMANDS <= set(imports()), COMMANDS - set(imports())


def test_no_core_module_imports_a_command():
    graph = imports()
    upward = {f"{m} -> {c}" for m in set(graph) - COMMANDS for c in graph[m] & COMMANDS}
    assert not upward, f"the core imports a command: {sorted(upward)}"


def test_no_import_circle():
    graph, state, circles = imports(), {}, []

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
    assert not circles, f"import circles: {circles}"


def test_the_layering_test_sees_a_lazy_upward_import(tmp_path, monkeypatch):
    """The reading itself: an import inside a function counts, and a circle through it is found."""
    for name, code in {"results": "def f():\n    from .check import g\n", "check": "from .results import f\n",
                       "stale": "", "bench": "", "candidates": "", "export": "", "notebooks": "", "predict": "",
                       "profile": "", "sweep": ""}.items():
        (tmp_path / f"{name}.py").write_text(code)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert imports()["results"] == {"check"}
    try:
        test_no_import_circle()
    except AssertionError as error:
        assert "check -> results -> check" in str(error) or "results -> check -> results" in str(error)
    else:
        raise AssertionError("the circle was not found")
