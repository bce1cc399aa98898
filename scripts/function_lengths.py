"""Fail when a function in the application packages is longer than the house allows.

    python scripts/function_lengths.py [--max 50] [PACKAGE ...]   (make lint runs it)

Counts every function and method, nested ones included, from its `def` line (decorators
excluded) to its last line.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "web", "workers")


def long_functions(paths: list[Path], limit: int) -> list[tuple[Path, int, str, int]]:
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append((path, node.lineno, node.name, length))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=50)
    parser.add_argument("packages", nargs="*", default=PACKAGES)
    args = parser.parse_args(argv)
    paths = [p for package in args.packages for p in sorted((ROOT / package).rglob("*.py"))]
    found = long_functions(paths, args.max)
    for path, line, name, length in found:
        print(f"{path.relative_to(ROOT)}:{line}: {name} is {length} lines (at most {args.max})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
