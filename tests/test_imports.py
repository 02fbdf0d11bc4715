"""No import circles anywhere in the project's packages (axl, agents and its subpackages,
compute, coordination), within a package or across packages.

Every import counts: module level, lazy (inside a function, kept there for start-up cost) and
``TYPE_CHECKING`` ones, relative or absolute. ``from pkg import name`` is an edge to the
submodule ``pkg.name`` when there is one, else to ``pkg`` itself (its ``__init__``)."""

from __future__ import annotations

import ast
from pathlib import Path

import agents

PACKAGES = ("axl", "agents", "compute", "coordination")
ROOT = Path(agents.__file__).parent.parent


def _modules(root: Path) -> dict[str, Path]:
    """Every module of the project's packages, by dotted name (a package is its ``__init__``)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _owner(name: str, modules: set[str]) -> str | None:
    """The project module ``name`` lives in (the longest dotted prefix), None outside it."""
    parts = name.split(".")
    while parts:
        if (candidate := ".".join(parts)) in modules:
            return candidate
        parts.pop()
    return None


def _imports(name: str, source: str, *, package: bool, modules: set[str]) -> set[str]:
    """The project modules that module ``name`` imports anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(o for alias in node.names if (o := _owner(alias.name, modules)))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                target = node.module or ""
            else:
                base = name.split(".") if package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                owner = sub if sub in modules else _owner(target, modules)
                if owner is not None:
                    found.add(owner)
    found.discard(name)
    return found


def _graph(root: Path) -> dict[str, set[str]]:
    modules = _modules(root)
    names = set(modules)
    return {
        name: _imports(name, path.read_text(), package=path.name == "__init__.py", modules=names)
        for name, path in modules.items()
    }


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


def test_imports_are_resolved_as_python_does() -> None:
    modules = {"p", "p._a", "p._b", "p.sub", "p.sub._c", "p.sub._d", "q"}
    source = """
from typing import TYPE_CHECKING
import os
from .. import _a
from .._b import B
from . import helper
import q.thing
if TYPE_CHECKING:
    from p.sub._c import C
def later() -> None:
    from ._d import D
"""
    found = _imports("p.sub._e", source, package=False, modules=modules)
    assert found == {"p._a", "p._b", "p.sub", "q", "p.sub._c", "p.sub._d"}
    # in a package's __init__, "." is the package itself
    init = _imports("p.sub", "from ._c import C\nfrom .. import X", package=True, modules=modules)
    assert init == {"p.sub._c", "p"}


def test_the_graph_covers_every_package() -> None:
    graph = _graph(ROOT)
    for package in PACKAGES:
        assert package in graph
    assert {"agents.cli._app", "agents.market._solver", "agents.sim._runner"} <= set(graph)
    assert "agents.cli._commands" in graph["agents.cli._app"]
    assert "coordination" in graph["agents.cli._chain"]  # a lazy import counts too


def test_no_import_circle_in_any_package() -> None:
    cycle = _cycle(_graph(ROOT))
    assert cycle is None, "import circle: " + " -> ".join(cycle)
