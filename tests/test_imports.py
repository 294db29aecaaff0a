"""The package's import graph, read from the sources: no cycles, and the model does not depend on the runtimes.

Every import counts, including those inside functions: a lazy import still couples two modules, and
two modules that import each other (even lazily) cannot be understood or changed one at a time.
Importing `a.b.c` from outside package `a.b` also runs `a.b/__init__.py`, so that is an edge too.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[1] / "hypood_ros"


def modules() -> Dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> Dict[str, Set[str]]:
    mods = modules()

    def resolve(name: str):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: Dict[str, Set[str]] = defaultdict(set)
    for module, path in mods.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` imports the module pkg.sub; `from pkg import name` reads pkg/__init__.py
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base for alias in node.names]
            else:
                continue
            for name in names:
                target = resolve(name) if name.startswith("hypood_ros") else None
                if target is None or target == module:
                    continue
                edges[module].add(target)
                # the parent packages that this import initializes (those outside the importer's own package)
                parent = target.rpartition(".")[0]
                while parent and not (module == parent or module.startswith(parent + ".")):
                    edges[module].add(parent)
                    parent = parent.rpartition(".")[0]
    return edges


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def area(module: str) -> str:
    """The first level under hypood_ros: a subpackage (model, runtimes, ...) or a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_graph_is_read():
    edges = import_graph()
    assert "hypood_ros.head" in edges["hypood_ros.model.segmentor"]
    assert "hypood_ros.runtimes.export" in edges["hypood_ros.runtimes.engine_build"]
    assert len(edges) > 50


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_no_cycle_between_subpackages():
    edges = import_graph()
    areas: Dict[str, Set[str]] = defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if area(a) != area(b) and b != "hypood_ros":
                areas[area(a)].add(area(b))
    assert cycles(areas) == []


def test_model_does_not_import_runtimes():
    edges = import_graph()
    offending = sorted((a, b) for a, targets in edges.items() for b in targets
                       if area(a) == "model" and area(b) == "runtimes")
    assert offending == []


def test_head_params_live_in_one_neutral_module():
    """model, runtimes, scores and kernels all get HeadParams from hypood_ros.head, which needs none of them."""
    edges = import_graph()
    assert {area(b) for b in edges["hypood_ros.head"]} <= {"errors"}
    import hypood_ros.head as head
    import hypood_ros.runtimes.base as base

    assert base.HeadParams is head.HeadParams
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        assert "class HeadParams" not in text or path.name == "head.py", path
        assert "def head_from_json" not in text or path.name == "head.py", path


def test_the_finder_sees_a_cycle():
    """The cycle finder itself, on a graph with a known cycle."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
