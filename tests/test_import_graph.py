"""The packages' import graph, read from the source with ast: no circles, and the
simulation core never imports the post-run analysis.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a
lazy import hides a circle from Python but not from a reader. An import of a name from a
package (``from sim.guards import GuardSpec``) is an edge to the package's
``__init__``; an import of a submodule is an edge to that module.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "agents", "topologies", "experiments")
#: Post-run analysis and plots: they read tables, the simulation never imports them.
ANALYSIS = ("sim.analysis", "sim.plots")
#: The user-facing front ends that may show an analysis (the CLI's report, the dashboard).
FRONT_ENDS = ("experiments.cli", "experiments.report", "experiments.dashboard")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ``name`` (a module, or a name inside one), or None (not ours)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Each module of the packages, with the modules of the packages it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(_resolve(alias.name, modules) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                targets.add(_resolve(base, modules))
                targets.update(_resolve(f"{base}.{alias.name}", modules) for alias in node.names)
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def test_the_graph_is_read():
    graph = import_graph()
    assert "experiments.config" in graph["experiments.validation"]
    assert "sim.guards" in graph["experiments.schema"]
    assert "topologies.graphs.base" in graph["topologies.graphs.star"]


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert circles(import_graph()) == []


@pytest.mark.parametrize("package", ["sim", "agents", "topologies", "experiments"])
def test_the_core_never_imports_the_analysis(package):
    graph = import_graph()
    offenders = {
        f"{module} -> {target}"
        for module, targets in graph.items()
        if _is(module, (package,)) and not _is(module, ANALYSIS + FRONT_ENDS)
        for target in targets
        if _is(target, ANALYSIS)
    }
    assert sorted(offenders) == []
