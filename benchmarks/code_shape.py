"""The shape of the package's code, for issue 14's figures: import cycles between files
(function-local imports included), function-local internal imports, files over 300 lines
and functions over 60 lines.

    python benchmarks/code_shape.py            # prints a Markdown summary
    python benchmarks/code_shape.py --json out.json

The import graph is tests/test_imports.py's, read from the source with ``ast``, so an
import inside a function counts as an edge: a cycle held together by one is a cycle.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/code_shape.py` from a checkout
    sys.path.insert(0, str(REPO))

from tests import test_imports  # noqa: E402  (the import graph the test keeps acyclic)


def modules() -> dict[str, Path]:
    return dict(sorted(test_imports._modules().items()))


def long_functions(mods: dict[str, Path], limit: int) -> list[tuple[str, str, int]]:
    out = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append((name, node.name, n))
    return sorted(out, key=lambda t: -t[2])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    mods = modules()
    graph, local = test_imports._graph()
    edges = sum(len(v) for v in graph.values())
    big = sorted(((n, len(p.read_text().splitlines())) for n, p in mods.items()
                  if len(p.read_text().splitlines()) > 300), key=lambda t: -t[1])
    funcs = long_functions(mods, 60)
    cyc = test_imports._cycles(graph)
    facts = {"files": len(mods), "internal_import_edges": edges, "cycles": cyc,
             "function_local_internal_imports": [list(t) for t in local],
             "files_over_300_lines": [list(t) for t in big],
             "functions_over_60_lines": [list(t) for t in funcs]}
    print(f"{len(mods)} files, {edges} internal import edges (file to file)")
    print(f"import cycles between files: {len(cyc)}" + "".join(f"\n  - {' <-> '.join(c)}" for c in cyc))
    print(f"function-local internal imports: {len(local)}")
    for m, t, line in local:
        print(f"  - {m}:{line} -> {t}")
    print(f"files over 300 lines: {len(big)}")
    for m, n in big:
        print(f"  - {m}: {n}")
    print(f"functions over 60 lines: {len(funcs)}")
    for m, f, n in funcs:
        print(f"  - {m}.{f}: {n}")
    if args.json:
        args.json.write_text(json.dumps(facts, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
