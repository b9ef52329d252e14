"""The package's internal import graph: no cycles between files, and function-local
imports of edgeslim modules only where they defer something optional or heavy.

A cycle held together by an import inside a function works until someone moves the
import; this test reads the source (``ast``), so it sees those imports too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import edgeslim

ROOT = Path(edgeslim.__file__).parent
# Function-local imports of edgeslim modules that are there on purpose, and why.
DEFERRED = {
    "edgeslim.cli": "the command line answers --help and bad input without importing torch",
    "edgeslim.targets.agent": "the device agent imports only what the artifact's runtime needs",
    "edgeslim.data": "each dataset's reader (Pillow, scikit-learn) loads only when named",
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.with_suffix("").relative_to(ROOT.parent).parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    mods = _modules()

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in mods:
                return ".".join(parts[:i])
        return None

    graph: dict[str, set[str]] = defaultdict(set)
    local: list[tuple[str, str, int]] = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        typing_only, in_function = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                typing_only |= {id(n) for n in ast.walk(node)}
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_function |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    raise AssertionError(f"{name}: relative import; the package uses absolute imports")
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for t in {resolve(t) for t in targets if t.startswith("edgeslim")} - {None, name}:
                graph[name].add(t)
                if id(node) in in_function:
                    local.append((name, t, node.lineno))
    return graph, local


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one file (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_files():
    graph, _ = _graph()
    assert len(graph) > 50  # the walk found the package
    assert _cycles(graph) == []


def test_function_local_internal_imports_only_defer_optional_work():
    _, local = _graph()
    unexplained = sorted({f"{m} -> {t} (line {n})" for m, t, n in local if m not in DEFERRED})
    assert unexplained == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
