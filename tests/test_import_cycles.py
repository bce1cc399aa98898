"""No import cycles in the application packages, a package and its own child included.

import-linter's layer contracts forbid imports across layers; they do not forbid two modules
of one package importing each other, nor `web/__init__.py` and `web/observability.py` doing
so. This test builds the same import graph (grimp, import-linter's graph library) and fails
on any strongly connected set of modules, naming the cycle.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGES = ("web", "workers", "models", "adapters")


def find_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every import cycle (Tarjan's strongly connected components of two or more modules,
    or a module importing itself), each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(start: str) -> None:
        # iterative, so a deep graph cannot hit the recursion limit
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                self_import = module in graph.find_modules_directly_imported_by(module)
                if len(component) > 1 or self_import:
                    cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return sorted(cycles)


def _graph(imports: dict[str, set[str]]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for module, imported in imports.items():
        graph.add_module(module)
        for other in imported:
            graph.add_import(importer=module, imported=other)
    return graph


def test_the_application_packages_have_no_import_cycle():
    graph = grimp.build_graph(*PACKAGES)
    assert {"web", "web.observability", "web.pagination", "web.error_pages"} <= graph.modules
    cycles = find_cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("imports", "expected"),
    [
        # a package and its own child (web/__init__ <-> web/observability, as it was)
        (
            {"web": {"web.observability"}, "web.observability": {"web"}},
            [["web", "web.observability"]],
        ),
        # pages importing an API module that imports the pages back, through a third module
        (
            {
                "web.pages": {"web.api.escalations"},
                "web.api.escalations": {"web.api"},
                "web.api": {"web.pages"},
            },
            [["web.api", "web.api.escalations", "web.pages"]],
        ),
        # both sides importing one shared module is not a cycle
        (
            {
                "web.pages": {"web.pagination"},
                "web.api": {"web.pagination"},
                "web.pagination": set(),
            },
            [],
        ),
    ],
)
def test_find_cycles_names_each_cycle_and_nothing_else(imports, expected):
    assert find_cycles(_graph(imports)) == expected
