"""The layout of practice/quickbooks (docs/adr/0006): no import circles, and imports only go down
web -> actions -> sync -> connection (models and statuses below them all).

Reads the source with `ast`, so an import inside a function or under TYPE_CHECKING counts too:
a lazy import hides a circle from Python, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "practice.quickbooks"
ROOT = Path(__file__).resolve().parents[2] / "practice" / "quickbooks"

# Lower number = lower layer. A module may import its own layer or any lower one, never a higher.
LAYERS = {
    "models": 0,
    "statuses": 0,
    "migrations": 0,
    "connection": 1,
    "sync": 2,
    "actions": 3,
    "selectors": 3,
    "billing_status": 3,  # the selectors of services, invoices and payments
    "history_text": 0,  # history sentences in the reader's language (models show them)
    "problems": 3,  # the problems page's selectors and the banner's question
    "notify": 3,  # notifications of new Errors, called after each run
    "reconciliation": 3,  # the reconciliation page's rows and explanations (reads only)
    "context_processors": 4,
    "web": 4,
}
LAYER_NAMES = {0: "models", 1: "connection", 2: "sync", 3: "actions", 4: "web"}
# Wiring sits outside the layers (it connects them, nothing imports it): the app config, urls,
# management commands and the `make demo` helpers.
WIRING = {"__init__", "apps", "urls", "management", "demo"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package `name` imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or not target.startswith(PACKAGE + "."):
                continue
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def top_part(module: str) -> str:
    rest = module[len(PACKAGE) + 1 :] if module != PACKAGE else "__init__"
    return rest.split(".")[0]


def layer_of(module: str) -> int | None:
    top = top_part(module)
    if top in WIRING:
        return None
    if top not in LAYERS:
        raise AssertionError(f"{module} is in no layer: give it a folder in LAYERS or WIRING (docs/adr/0006)")
    return LAYERS[top]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    visiting: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        visiting.append(node)
        on_path.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                return [*visiting[visiting.index(nxt) :], nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        visiting.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        source_layer = layer_of(module)
        for target in sorted(targets):
            target_layer = layer_of(target)
            if target_layer is None:
                problems.append(f"{module} imports {target}: wiring is imported by nothing")
            elif source_layer is not None and target_layer > source_layer:
                problems.append(
                    f"{module} ({LAYER_NAMES[source_layer]}) imports {target} ({LAYER_NAMES[target_layer]})"
                )
    return problems


def test_the_graph_sees_the_known_imports():
    graph = import_graph()
    # A parser that missed imports would pass every check below, so pin a few real edges.
    assert f"{PACKAGE}.connection.oauth" in graph[f"{PACKAGE}.connection.client"]
    assert f"{PACKAGE}.sync.engine" in graph[f"{PACKAGE}.sync.kinds.customers"]
    assert f"{PACKAGE}.sync.kinds.customers" in graph[f"{PACKAGE}.sync.kinds"]
    assert f"{PACKAGE}.sync.engine" in graph[f"{PACKAGE}.sync.tasks"]  # a function-level import
    assert f"{PACKAGE}.actions" in graph[f"{PACKAGE}.web.sync_views"]


def test_no_import_circles():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_imports_only_go_down_web_actions_sync_connection():
    assert upward_imports(import_graph()) == []


def test_the_engine_imports_no_record_kind():
    assert not {m for m in import_graph()[f"{PACKAGE}.sync.engine"] if m.startswith(f"{PACKAGE}.sync.kinds")}


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_find_cycle_reports_a_circle(graph, expected):
    assert find_cycle(graph) == expected


def test_an_upward_import_is_reported():
    oauth, engine, actions = (f"{PACKAGE}.connection.oauth", f"{PACKAGE}.sync.engine", f"{PACKAGE}.actions")
    assert upward_imports({oauth: {engine}, engine: {actions}, actions: set()}) == [
        f"{oauth} (connection) imports {engine} (sync)",
        f"{engine} (sync) imports {actions} (actions)",
    ]
