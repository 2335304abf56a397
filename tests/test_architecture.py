"""The package map of docs/internals.md holds.

No module import cycle, and each package imports only what its row of the table says
("may import").

Every module of ``sop_pipeline`` is parsed with ``ast`` (nothing is imported), and every
import statement counts: top level, inside a function (a lazy import still ties the two
modules together) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sop_pipeline"

#: The "may import" column of docs/internals.md "Package map", by first-level name under
#: ``sop_pipeline`` (a package or a top-level module). A dotted entry allows one module only.
#: ``defs`` and ``runtime`` rows say "everything above" / "everything but cli".
_PLAIN = {
    "errors",
    "core",
    "storage",
    "ingest",
    "planning",
    "quality",
    "publish",
    "report",
    "generator",
}
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "storage": {"core", "errors"},
    "ingest": {"core", "storage", "quality", "errors"},
    "planning": {"core", "storage", "errors"},
    "quality": {"core", "ingest.contract", "planning", "publish.tables", "errors"},
    "publish": {"core", "storage", "planning", "errors"},
    "report": {"core", "storage", "planning", "publish", "ingest.contract", "errors"},
    "generator": {"core", "ingest.contract", "errors"},
    "defs": set(_PLAIN),
    "definitions": {"defs", "core", "runtime.steplog"},
    "runtime": set(_PLAIN) | {"defs", "definitions"},
    "cli": set(_PLAIN) | {"defs", "definitions", "runtime"},
}
#: Packages of plain Python that the Dagster layer calls: no Dagster import (the table's
#: preamble: "plain-Python packages with no Dagster import").
NO_DAGSTER = _PLAIN


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ``sop_pipeline`` that an imported dotted name lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(modules of sop_pipeline, top-level names of other packages) that ``module`` imports."""
    path, is_pkg = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sop_pipeline":
                    ours.add(_resolve(alias.name))
                else:
                    theirs.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source.split(".")[0] != "sop_pipeline":
                theirs.add(source.split(".")[0])
                continue
            for alias in node.names:  # ``from pkg import module`` imports that module
                full = f"{source}.{alias.name}"
                ours.add(full if full in MODULES else _resolve(source))
    ours.discard(None)
    ours.discard(module)
    return ours, theirs


GRAPH = {m: _imports(m)[0] for m in MODULES}


def _layer(module: str) -> str:
    """``sop_pipeline.ingest.reader`` → ``ingest``; the package ``__init__`` → ``""``."""
    return module.split(".")[1] if "." in module else ""


def _allowed(importer: str, imported: str) -> bool:
    src, dst = _layer(importer), _layer(imported)
    if src == dst or dst == "":  # inside a package, or the package version string
        return True
    rel = imported.split(".", 1)[1]
    return any(rel == a or rel.startswith(a + ".") for a in MAY_IMPORT[src])


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_scan_sees_the_package():
    # the checks below are only worth something if the scan finds the modules and their imports
    assert {
        "sop_pipeline.ingest.reader",
        "sop_pipeline.cli.commands",
        "sop_pipeline.errors",
    } <= set(MODULES)
    assert "sop_pipeline.ingest.checks" in GRAPH["sop_pipeline.ingest.reader"]
    # a lazy import inside a function counts (cli/commands.py imports the generator lazily)
    assert "sop_pipeline.generator.company" in GRAPH["sop_pipeline.cli.commands"]
    assert set(MAY_IMPORT) == {_layer(m) for m in MODULES if _layer(m)}


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_import_cycle():
    cycles = _cycles(GRAPH)
    assert not cycles, "modules that import each other (directly or round a loop): " + "; ".join(
        " <-> ".join(sorted(c)) for c in cycles
    )


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_package_imports_follow_the_package_map(layer):
    wrong = sorted(
        f"{importer} imports {imported}"
        for importer, imported_set in GRAPH.items()
        if _layer(importer) == layer
        for imported in imported_set
        if not _allowed(importer, imported)
    )
    assert not wrong, (
        f"{layer}/ may import only {sorted(MAY_IMPORT[layer]) or 'nothing'} (docs/internals.md): "
        + "; ".join(wrong)
    )


def test_nothing_but_cli_imports_cli():
    wrong = sorted(
        f"{m} imports {d}"
        for m, deps in GRAPH.items()
        if _layer(m) != "cli"
        for d in deps
        if _layer(d) == "cli"
    )
    assert not wrong, wrong


@pytest.mark.parametrize("layer", sorted(NO_DAGSTER))
def test_plain_python_packages_do_not_import_dagster(layer):
    wrong = sorted(
        m
        for m in MODULES
        if _layer(m) == layer and _imports(m)[1] & {"dagster", "dagster_dbt", "dagster_duckdb"}
    )
    assert not wrong, f"{layer}/ is plain Python (no Dagster import), but: {wrong}"


#: what writes a plan table (storage/warehouse.py, storage/plan_tables.py)
PLAN_WRITERS = {"replace_plan_rows", "write_plan_tables"}
#: the one module of the Dagster layer that may call them: the IO manager's
STORAGE_OWNER = "sop_pipeline.defs.resources"


def _names_used(module: str) -> set[str]:
    """Every name and attribute ``module`` refers to (imported, called or passed on)."""
    tree = ast.parse(MODULES[module][0].read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name.split(".")[-1])
    return names


def test_plan_tables_are_written_by_the_io_manager_only():
    # issue #13: an asset returns its tables (PlanTables for side tables), it never writes them
    assert "write_plan_tables" in _names_used(STORAGE_OWNER)  # the scan sees the one writer
    wrong = sorted(
        f"{m} uses {', '.join(sorted(PLAN_WRITERS & _names_used(m)))}"
        for m in MODULES
        if _layer(m) == "defs" and m != STORAGE_OWNER and PLAN_WRITERS & _names_used(m)
    )
    assert not wrong, "write plan tables through the IO manager (defs/resources.py): " + (
        "; ".join(wrong)
    )


_SCRIPT_IMPORT = re.compile(r"^\s*(?:from|import) (test_\w+)", re.MULTILINE)


def test_no_test_module_imports_another():
    # shared builders live in tests/factories/ and fixtures in tests/conftest.py
    tests = Path(__file__).resolve().parent
    wrong = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            wrong += [
                f"{path.name} imports {n}" for n in names if n.split(".")[-1].startswith("test_")
            ]
            # a script the test runs in a subprocess (a string) counts too
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                wrong += [
                    f"{path.name} runs a script that imports {m}"
                    for m in _SCRIPT_IMPORT.findall(node.value)
                ]
    assert not wrong, wrong
