"""Documentation is part of the feature: generated pages current, every command and field
documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import DATA, REPO

sys.path.insert(0, str(REPO / "scripts"))

import gen_docs


@pytest.mark.parametrize("page", sorted(gen_docs.PAGES))
def test_generated_pages_are_current(page: str) -> None:
    on_disk = (REPO / "docs" / page).read_text(encoding="utf-8")
    assert on_disk == gen_docs.PAGES[page](), f"run: python scripts/gen_docs.py ({page})"


@pytest.mark.parametrize("page,section", sorted(gen_docs.SECTIONS))
def test_generated_sections_are_current(page: str, section: str) -> None:
    on_disk = (REPO / "docs" / page).read_text(encoding="utf-8")
    expected = gen_docs.with_section(on_disk, section, gen_docs.SECTIONS[page, section]())
    assert on_disk == expected, f"run: python scripts/gen_docs.py ({page}: {section})"


def test_payload_reference_lists_every_field_and_reason() -> None:
    from edgewatch.contracts import codec
    from edgewatch.contracts.reference_doc import MESSAGES

    text = (REPO / "docs" / "mqtt.md").read_text(encoding="utf-8")
    for reason in codec.REASONS:
        assert f"| `{reason}` |" in text, reason
    for _, cls in MESSAGES:
        assert f": {cls.__name__}" in text
        for name in cls.__struct_fields__:
            assert f"| `{name}` |" in text, f"{cls.__name__}.{name}"


def test_every_command_is_in_the_readme() -> None:
    from edgewatch.cli import _parser

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"edgewatch {name}" in readme, name


def test_readme_opens_with_demo_and_test() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    head = readme[:1500]
    assert "make demo" in head and "make test" in head


def test_every_summary_field_is_documented(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "summary-format.md").read_text(encoding="utf-8")
    example = DATA / "summary-example.json"
    line = json.loads(example.read_text(encoding="utf-8"))
    for key, value in line.items():
        if key == "type":
            continue
        assert f"`{key}" in doc, key
        if key in {"frames", "window", "anomaly"}:
            for sub in value:
                assert f"`{key}.{sub}`" in doc or f"`{sub}`" in doc, f"{key}.{sub}"
        if key == "drift":
            for sub in value:
                assert f"`drift.{sub}`" in doc or sub == "features", sub


def _nav_pages(nav: object) -> list[str]:
    """The page files a mkdocs.yml ``nav`` lists, in order."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    if isinstance(nav, list):
        return [p for v in nav for p in _nav_pages(v)]
    return []


def _require_mkdocs() -> None:
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is not installed: it is in the dev extra, run scripts/setup-venv.sh "
                    "(or .venv/bin/pip install -e '.[dev]')")


def test_every_docs_page_is_in_the_site_nav() -> None:
    _require_mkdocs()
    import yaml  # installed with mkdocs

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = _nav_pages(config["nav"])
    on_disk = sorted(p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs").rglob("*.md"))
    assert sorted(set(listed)) == on_disk, (
        f"mkdocs.yml nav and docs/ differ: not in nav {sorted(set(on_disk) - set(listed))}, "
        f"in nav but missing {sorted(set(listed) - set(on_disk))}")
    assert len(listed) == len(set(listed)), "a page is listed twice in mkdocs.yml nav"


def test_docs_site_builds_in_strict_mode(tmp_path: Path) -> None:
    """Every link and anchor in docs/ resolves (mkdocs.yml's `validation` makes each a warning,
    --strict makes warnings fail)."""
    _require_mkdocs()
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    problems = [line for line in done.stderr.splitlines() if not line.startswith("INFO")]
    if done.returncode != 0:
        pytest.fail("mkdocs build --strict failed:\n" + "\n".join(problems), pytrace=False)
    assert (tmp_path / "site" / "index.html").is_file()
