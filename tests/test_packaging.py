"""The package is fit to publish: a LICENSE that matches the metadata, the dependency floors
pinned in constraints/floors.txt (what scripts/test-floors.sh installs) exactly as
pyproject.toml declares them, and an sdist that holds what the README and the docs point at
(configs/, systemd/, docs/) and nothing of a working tree (.venv, out/)."""

from __future__ import annotations

import subprocess
import sys
import tarfile

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.paths import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
FLOORS = REPO / "constraints" / "floors.txt"
HOME = "https://github.com/edgewatch/edgewatch"


def declared_floors() -> dict[str, tuple[str, str]]:
    """``>=`` floors of the runtime dependencies (base, agent, collector), by package name:
    (version, marker). An extra such as ``psycopg[binary]`` also floors ``psycopg-binary``."""
    extras = PROJECT["optional-dependencies"]
    out = {}
    for line in [*PROJECT["dependencies"], *extras["agent"], *extras["collector"]]:
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one: the floor
        assert spec.operator == ">=", f"{line}: declare a floor (>=), pin nothing else"
        marker = str(req.marker or "")
        for name in [req.name, *(f"{req.name}-{extra}" for extra in req.extras)]:
            out[canonicalize_name(name)] = (spec.version, marker)
    return out


def pinned_floors() -> dict[str, tuple[str, str]]:
    out = {}
    for line in FLOORS.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line}: pin with =="
            out[canonicalize_name(req.name)] = (spec.version, str(req.marker or ""))
    return out


def test_the_constraints_pin_exactly_the_declared_floors() -> None:
    declared = declared_floors()
    assert {"numpy", "onnxruntime", "psycopg-binary"} <= set(declared)
    assert pinned_floors() == declared


def test_the_floors_read_what_the_declarations_say() -> None:
    """The parsing above sees the declarations: a missing or changed pin is a difference."""
    declared = declared_floors()
    assert declared["numpy"][0] == "1.24.2"  # onnxruntime 1.16.0 needs numpy >= 1.24.2
    assert declared["tomli"][1] == 'python_version < "3.11"'
    changed = {**pinned_floors(), "numpy": ("1.24", "")}
    assert changed != declared


def test_the_metadata_names_the_licence_and_the_project() -> None:
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX" in text
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # PEP 639
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert PROJECT["urls"]["Homepage"] == HOME
    assert all(url.startswith(HOME) for url in PROJECT["urls"].values())


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The names in the sdist built from this tree (python -m build, isolated)."""
    out = tmp_path_factory.mktemp("sdist")
    done = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out),
                           str(REPO)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (archive,) = out.glob("edgewatch-*.tar.gz")
    with tarfile.open(archive) as tar:
        return [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]


def test_the_sdist_holds_what_the_docs_point_at(sdist: list[str]) -> None:
    names = set(sdist)
    assert {"LICENSE", "README.md", "pyproject.toml", "constraints/floors.txt", "Makefile",
            "src/edgewatch/__init__.py", "src/edgewatch/py.typed"} <= names
    for folder in ("configs/", "systemd/", "docs/", "scripts/", "tests/", "bench/"):
        assert any(n.startswith(folder) for n in names), folder
    tracked = {p.relative_to(REPO).as_posix() for p in (REPO / "configs").glob("*.toml")}
    tracked |= {p.relative_to(REPO).as_posix() for p in (REPO / "systemd").iterdir()}
    assert tracked <= names


def test_the_sdist_holds_nothing_of_a_working_tree(sdist: list[str]) -> None:
    bad = [n for n in sdist if n.split("/")[0] in {".venv", "out", "assets", "build", "dist",
                                                   ".git"}
           or "__pycache__" in n or n.endswith((".pyc", ".db"))]
    assert bad == []
