"""``edgewatch report`` from lines: the file it writes, thumbnails from an evidence folder,
and its usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgewatch.cli import main
from edgewatch.cli import report as report_cli
from support.paths import DATA


def _lines(tmp_path: Path, n: int = 5) -> Path:
    example = json.loads((DATA / "summary-example.json").read_text())
    out = tmp_path / "lines.jsonl"
    rows = []
    for i in range(n):
        example["window"] = {"start": 1767225600.0 + 10 * i, "end": 1767225610.0 + 10 * i,
                             "windows": 1}
        rows.append(json.dumps(example))
    out.write_text("\n".join(rows) + "\n")
    return out


def test_report_from_lines_with_evidence(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.jpg").write_bytes((DATA / "astronaut.jpg").read_bytes()[:100_000])
    out = tmp_path / "r.html"
    assert main(["report", "--summaries", str(_lines(tmp_path)), "--evidence", str(evidence),
                 "--out", str(out)]) == 0
    page = out.read_text()
    assert "data:image/jpeg;base64," in page and "Evidence" in page
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args", [[], ["--config", "c.toml"],
                                  ["--summaries", "x", "--config", "c.toml"]])
def test_report_usage_errors(tmp_path: Path, args: list[str]) -> None:
    assert main(["report", *args, "--out", str(tmp_path / "r.html")]) == 2


def test_report_of_a_missing_file_is_an_error(tmp_path: Path) -> None:
    assert main(["report", "--summaries", str(tmp_path / "none.jsonl"),
                 "--out", str(tmp_path / "r.html")]) == 1


def test_since_reads_iso_times_as_utc() -> None:
    assert report_cli._since("2026-01-01T00:00:00Z") == 1767225600.0
    assert report_cli._since("2026-01-01T00:00:00") == 1767225600.0
    assert report_cli._since(None) is None
