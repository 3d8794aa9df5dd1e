"""``edgewatch show`` (edgewatch.cli.show): replay lines read through the contracts and
printed as a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgewatch.cli.show import COLUMNS, format_table, parse_line, read_lines
from edgewatch.contracts import Alert, Rejected, SummaryV1
from edgewatch.errors import EdgewatchError
from support.paths import DATA

EXAMPLE = json.dumps(json.loads((DATA / "summary-example.json").read_text()))  # one line
ALERT = {"type": "alert", "schema": "edgewatch.alert/1", "id": "a1", "rule": "drift",
         "state": "firing", "severity": "critical",
         "window": {"start": 1767225600.0, "end": 1767225610.0}, "since": 1767225610.0,
         "updated": 1767225610.0, "message": "drift: contrast drifted"}


def test_lines_are_read_as_their_contract_and_other_types_skipped() -> None:
    assert isinstance(parse_line(EXAMPLE.encode()), SummaryV1)
    alert = parse_line(json.dumps(ALERT).encode())
    assert isinstance(alert, Alert) and alert.message == "drift: contrast drifted"
    assert parse_line(b'{"type": "reference", "anything": 1}') is None
    with pytest.raises(Rejected):
        parse_line(json.dumps({**ALERT, "state": "exploded"}).encode())


def test_a_bad_line_is_named_by_its_number(tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    path.write_text(EXAMPLE + "\n\n" + '{"type": "summary", "frames": 3}\n')
    with pytest.raises(EdgewatchError, match=r"replay\.jsonl:3: not a summary or alert line"):
        read_lines(path)
    with pytest.raises(EdgewatchError, match="cannot read"):
        read_lines(tmp_path / "missing.jsonl")


def test_the_table_has_one_row_per_window_then_the_alerts(tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    path.write_text("\n".join([EXAMPLE, json.dumps(ALERT), EXAMPLE]) + "\n")
    records = read_lines(path)
    assert [type(r) for r in records] == [SummaryV1, Alert, SummaryV1]
    lines = format_table(records).splitlines()
    assert lines[0].split() == [w for name, _ in COLUMNS for w in name.split()]
    assert lines[1].split() == ["2026-01-01", "00:00:00", "100", "100", "0", "0", "4.05", "0.77",
                                "120.18", "3803.30", "63.4", "1.31", "warning"]
    assert lines[2] == lines[1]
    assert lines[3] == "alert critical: drift: contrast drifted"
    assert len(lines) == 4
    assert len(lines[0]) == len(lines[1])  # columns line up
