"""The agents package has no import circles, counting lazy and TYPE_CHECKING imports."""

from __future__ import annotations

import ast
from pathlib import Path

import agents

PACKAGE = Path(agents.__file__).parent


def _imports(path: Path) -> set[str]:
    """The sibling modules a module imports anywhere in its body (``from ._x import y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import _x
                found.update(alias.name for alias in node.names)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_cycle_finder_sees_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_between_agents_modules() -> None:
    graph = {path.stem: _imports(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert "_agent" in graph
    assert _cycle(graph) is None


def test_no_import_circle_in_the_cli() -> None:
    folder = PACKAGE / "cli"
    graph = {path.stem: _imports(path) for path in folder.glob("*.py") if path.stem != "__init__"}
    assert "_app" in graph and "_commands" in graph["_app"]
    assert _cycle(graph) is None
