"""gpuflow's imports form no cycle and point only down its layers, lazy (function-level) imports included.

A cycle hides at first (a function-level import runs late) and breaks once someone moves an import up; an
upward import (core on serving, triggers on operators) drags Airflow or a cloud SDK into code that must not
need them. Read from the source with ``ast``, so nothing is imported and every module counts.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "plugins" / "gpuflow"
# What each layer must never import (core imports only core: checked on its own).
FORBIDDEN = {
    "kube": {"operators", "triggers"},
    "serving": {"operators", "triggers"},
    "clouds": {"operators", "triggers"},
    "state": {"operators", "triggers"},
    "triggers": {"operators"},
}

Graph = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class ImportGraph:
    """Module → the gpuflow modules it imports; ``lazy`` counts the edges only a function body makes."""

    modules: Graph
    lazy: int

    @property
    def edges(self) -> int:
        return sum(len(targets) for targets in self.modules.values())

    @property
    def packages(self) -> Graph:
        """The same graph between layers: a subpackage, or a top-level module (provisioning, cli...) on its own."""
        graph: dict[str, set[str]] = {layer(m): set() for m in self.modules}
        for source, targets in self.modules.items():
            graph[layer(source)] |= {layer(t) for t in targets} - {layer(source)}
        return {node: frozenset(targets) for node, targets in graph.items()}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """``gpuflow.core.job`` → ``core``; ``gpuflow.provisioning`` → ``provisioning``; ``gpuflow`` → ``gpuflow``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported(node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The gpuflow modules an import statement loads; ``from x import y`` means module ``x.y`` when it is one."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        assert not node.level, f"relative import of {node.module!r}: gpuflow imports absolutely"
        base = node.module or ""
        names = {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    found = set()
    for name in names:  # ``import gpuflow.core.job`` loads the deepest known module it names
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


@functools.cache
def import_graph() -> ImportGraph:
    files = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    known = set(files)
    modules: dict[str, frozenset[str]] = {}
    lazy = 0
    for source, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        statements = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        every = {t for n in statements for t in imported(n, known)} - {source}
        top = {t for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom) for t in imported(n, known)}
        lazy += len(every - top)
        modules[source] = frozenset(every)
    return ImportGraph(modules, lazy)


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle path (first node repeated at the end) per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while node not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(path_within(graph, component, node))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def path_within(graph: Graph, component: set[str], start: str) -> list[str]:
    """A shortest cycle through ``start`` inside one strongly connected component (breadth-first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is on no cycle of {sorted(component)}")


def show(found: Iterable[list[str]]) -> str:
    return "\n".join(" -> ".join(path) for path in found)


def test_no_cycle_between_packages() -> None:
    found = cycles(import_graph().packages)
    assert not found, f"package import cycles:\n{show(found)}"


def test_no_cycle_between_modules() -> None:
    graph = import_graph()
    found = cycles(graph.modules)
    assert not found, f"module import cycles:\n{show(found)}"
    print(
        f"\nimport graph of gpuflow: {len(graph.modules)} modules, {graph.edges} edges "
        f"({graph.lazy} function-level), {len(graph.packages)} packages, "
        f"{sum(map(len, graph.packages.values()))} package edges: no cycles"
    )


def test_layers_import_only_downward() -> None:
    packages = import_graph().packages
    wrong = [f"core -> {target}" for target in sorted(packages["core"])]
    wrong += [f"{source} -> {t}" for source, banned in FORBIDDEN.items() for t in sorted(packages[source] & banned)]
    assert not wrong, "imports against the layers (see DESIGN.md section 2):\n" + "\n".join(wrong)


def test_the_cycle_finder_reports_the_path() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": frozenset({"b"}), "b": frozenset()}) == []
