"""The layout keeps its promises: stages import in one direction, the shared packages import
neither side, nothing imports the CLI, and the top level stays small.

Imports are read from the source (every ``import`` and ``from ... import`` statement, lazy ones
inside functions included), so a forbidden edge fails here even if no test exercises it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PKG = REPO / "src" / "edgewatch"


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every edgewatch module a source file imports (absolute names)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m == "edgewatch" or m.startswith("edgewatch.")}


GRAPH = {_module(p): _imports(p) for p in PKG.rglob("*.py")}

RULES = [
    ("edgewatch.contracts", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli",
                             "edgewatch.config")),
    ("edgewatch.stats", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli",
                         "edgewatch.config", "edgewatch.contracts")),
    ("edgewatch.agent", ("edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.collector", ("edgewatch.agent", "edgewatch.cli", "edgewatch.config.agent")),
    ("edgewatch.config.typed", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.config.mqtt", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.config.collector", ("edgewatch.agent", "edgewatch.cli")),
    ("edgewatch.config.delivery", ("edgewatch.agent", "edgewatch.collector", "edgewatch.cli")),
    ("edgewatch.config.agent", ("edgewatch.collector", "edgewatch.cli")),
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
