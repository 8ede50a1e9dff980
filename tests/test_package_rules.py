"""The package's shape, checked: tools apart from the library, no import cycles, no module named like an API function."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from conftest import REPO

import qa

PACKAGE = REPO / "qa"
# The command line is the edge that dispatches the tool commands (eval, bench,
# loadtest) to qa.measure; it is not part of the library.
EDGE = {"qa.cli", "qa.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """Every qa module `path` imports, at any depth of its code (functions and TYPE_CHECKING blocks too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "qa")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qa":
            for alias in node.names:
                # `from qa.reader import index` imports the module qa.reader.index.
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def test_every_module_is_found() -> None:
    assert {"qa", "qa.api", "qa.search.fusion", "qa.measure.evaluate", "qa.web.chat"} <= set(MODULES)
    assert all(target in MODULES for targets in GRAPH.values() for target in targets)


def test_the_library_never_imports_the_tools() -> None:
    library = [name for name in MODULES if not name.startswith("qa.measure") and name not in EDGE]
    offenders = {name: sorted(t for t in GRAPH[name] if t.startswith("qa.measure")) for name in library}
    assert {name: targets for name, targets in offenders.items() if targets} == {}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Depth-first search of an import graph; each back edge is a cycle, reported as its path."""
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_the_cycle_search_finds_cycles() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []


def test_there_are_no_import_cycles() -> None:
    assert find_cycles(GRAPH) == []


def test_no_module_is_named_like_a_public_function() -> None:
    functions = {name for name in qa.__all__ if inspect.isfunction(getattr(qa, name))}
    assert {"answer", "retrieve", "build_index", "load_index", "live_index"} <= functions
    names = {part for module in MODULES for part in module.split(".")[1:]}
    assert names & functions == set()


def test_every_module_says_its_job_in_its_first_docstring_line() -> None:
    missing = []
    for name, path in MODULES.items():
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        if not docstring or not docstring.splitlines()[0].strip():
            missing.append(name)
    assert missing == []


def test_the_package_init_only_re_exports() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}  # the docstring, imports and __all__
