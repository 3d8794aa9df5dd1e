"""The layout keeps its promises: stages import in one direction, the shared packages import
neither side, nothing imports the CLI, and the top level stays small. The tests keep theirs:
every module is imported by some test, the test tree mirrors the packages, and tests share
code through ``tests/support`` and ``conftest.py`` fixtures, never by importing each other.

Imports are read from the source (every ``import`` and ``from ... import`` statement, lazy ones
inside functions included), so a forbidden edge fails here even if no test exercises it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support.paths import REPO

PKG = REPO / "src" / "edgewatch"


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path) -> set[str]:
    """Every name a source file imports (absolute names; ``from a import b``: ``a``, ``a.b``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def _imports(path: Path) -> set[str]:
    """Every edgewatch module a source file imports (absolute names)."""
    return {m for m in _imported_names(path) if m == "edgewatch" or m.startswith("edgewatch.")}


GRAPH = {_module(p): _imports(p) for p in PKG.rglob("*.py")}
PACKAGES = {_module(p) for p in PKG.rglob("__init__.py")}
TESTS = REPO / "tests"
TEST_MODULES = sorted(TESTS.rglob("test_*.py"))

RULES = [
    ("edgewatch.contracts", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli",
                             "edgewatch.config")),
    ("edgewatch.stats", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli",
                         "edgewatch.config", "edgewatch.contracts")),
    ("edgewatch.report", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli",
                          "edgewatch.config")),
    ("edgewatch.agent", ("edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.collector", ("edgewatch.agent", "edgewatch.cli", "edgewatch.config.agent",
                             "edgewatch.config.model")),
    ("edgewatch.config.typed", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.config.mqtt", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.config.collector", ("edgewatch.agent", "edgewatch.cli")),
    ("edgewatch.config.delivery", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.config.agent", ("edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.config.model", ("edgewatch.collector", "edgewatch.cli")),
]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("package,forbidden", RULES, ids=[r[0] for r in RULES])
def test_imports_flow_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(f"{mod} imports {dep}" for mod, deps in GRAPH.items() if _within(mod, package)
                 for dep in deps if any(_within(dep, f) for f in forbidden))
    assert bad == []


def test_nothing_imports_the_cli() -> None:
    bad = sorted(f"{mod} imports {dep}" for mod, deps in GRAPH.items()
                 if not _within(mod, "edgewatch.cli")
                 for dep in deps if _within(dep, "edgewatch.cli"))
    assert bad == []


def test_the_top_level_is_small() -> None:
    entries = [p.name for p in PKG.iterdir() if p.name != "__pycache__"]
    assert len(entries) <= 12, sorted(entries)


def test_the_rules_see_real_edges() -> None:
    """The graph is not empty: the agent's pipeline does import the contracts and stats."""
    agent = {dep for mod, deps in GRAPH.items() if _within(mod, "edgewatch.agent")
             for dep in deps}
    assert any(_within(d, "edgewatch.contracts") for d in agent)
    assert any(_within(d, "edgewatch.stats") for d in agent)
    assert "edgewatch.collector.store" in GRAPH


# --------------------------------------------------------------------------- the tests


def _with_packages(name: str) -> set[str]:
    """A dotted name and the packages Python imports on the way (``a.b.c``: also ``a.b``,
    ``a``)."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _imported_by_tests() -> set[str]:
    """Every module of edgewatch that some test module imports, with its packages."""
    names = {n for path in TEST_MODULES for name in _imports(path) for n in _with_packages(name)}
    return names & set(GRAPH)


def _uncovered(imported: set[str]) -> list[str]:
    """The modules of edgewatch that no test imports, by name or through a package
    ``__init__`` a test imports that imports them (a re-export)."""
    covered = set(imported) & set(GRAPH)
    frontier = sorted(covered)
    while frontier:
        name = frontier.pop()
        if name in PACKAGES:
            for dep in GRAPH[name] & set(GRAPH):
                if dep not in covered:
                    covered.add(dep)
                    frontier.append(dep)
    return sorted(set(GRAPH) - covered)


def test_every_module_is_imported_by_a_test() -> None:
    assert _uncovered(_imported_by_tests()) == []


def test_the_coverage_rule_sees_missing_modules_and_re_exports() -> None:
    imported = _imported_by_tests()
    assert len(TEST_MODULES) > 30 and "edgewatch.stats.comparison" in imported
    assert _uncovered(imported - {"edgewatch.stats.comparison"}) == [
        "edgewatch.stats.comparison"]
    # edgewatch.collector.metrics re-exports its parts: importing the package covers them
    assert "edgewatch.collector.metrics.http" not in _uncovered({"edgewatch.collector.metrics"})
    assert "edgewatch.collector.metrics.http" in _uncovered({"edgewatch.collector.ingest"})


def test_tests_import_neither_other_tests_nor_conftest() -> None:
    bad = sorted(f"{path.relative_to(TESTS)} imports {name}" for path in TEST_MODULES
                 for name in _imported_names(path)
                 if name.split(".")[0].startswith("test_") or name.split(".")[0] == "conftest")
    assert bad == []


def test_the_test_tree_mirrors_the_packages() -> None:
    def ours(folder: Path) -> bool:  # not data, helpers, caches or hidden tool folders
        parts = folder.relative_to(TESTS).parts
        return not ({"__pycache__", "data", "support"} & set(parts)
                    or any(p.startswith(".") for p in parts))

    folders = sorted(p.relative_to(TESTS) for p in TESTS.rglob("*") if p.is_dir() and ours(p))
    assert folders, "tests are expected in folders named like the packages"
    assert [f for f in folders if not (PKG / f / "__init__.py").is_file()] == []
    names = [p.name for p in TEST_MODULES]
    assert sorted({n for n in names if names.count(n) > 1}) == []  # prepend import mode
    packages = sorted(p.parent.relative_to(TESTS) for p in TESTS.rglob("__init__.py")
                      if "__pycache__" not in p.parts)
    assert packages == [Path("support")]
