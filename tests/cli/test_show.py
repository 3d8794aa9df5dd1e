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


def test_the_table_has_one_row_per_window_then_the_reasons_and_the_alerts(
        tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    path.write_text("\n".join([EXAMPLE, json.dumps(ALERT), EXAMPLE]) + "\n")
    records = read_lines(path)
    assert [type(r) for r in records] == [SummaryV1, Alert, SummaryV1]
    lines = format_table(records, width=250).splitlines()
    assert lines[0].startswith("2 window(s) from 2026-01-01 00:00:00 to 2026-01-01 00:00:10 UTC")
    assert lines[1].split() == [c.name for c in COLUMNS]
    assert lines[2].split() == [w for c in COLUMNS for w in c.unit.split()]
    assert lines[3].split() == ["00:00:00", "10.0", "100", "100", "0", "0", "4.05", "0.77",
                                "120.18", "3803", "63.4", "1.31", "ok", "warning"]
    assert lines[4] == lines[3]
    assert len({len(line) for line in lines[1:5]}) == 1  # columns line up
    assert lines[5] == ""
    assert lines[6:6 + len(COLUMNS)] == [c.legend for c in COLUMNS]
    why = lines[lines.index("why:") + 1]
    assert why == ("00:00:00 warning: position (where the boxes are, 3x3 grid) mix changed by "
                   "Jensen-Shannon distance 0.40: warning")
    assert lines[-2:] == ["alerts (1):", "2026-01-01 00:00:10 critical firing: drift: contrast "
                          "drifted"]


def test_a_file_without_windows_says_so(tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    path.write_text(json.dumps(ALERT) + "\n")
    assert format_table(read_lines(path), width=80).splitlines()[0] == \
        "no window summaries in this file"


def test_quality_faults_are_named_in_the_row_and_in_full_below(tmp_path: Path) -> None:
    line = json.loads(EXAMPLE)
    line["quality"] = {"empty_output_streak": 5, "blurred": 2}
    path = tmp_path / "replay.jsonl"
    path.write_text(json.dumps(line) + "\n")
    lines = format_table(read_lines(path), width=250).splitlines()
    assert lines[3].split()[-2:] == ["empty_outpu…", "warning"]  # cut to the column's width
    assert len(lines[3]) == len(lines[1])
    why = lines[lines.index("why:") + 1]
    assert why.startswith("00:00:00 warning: data quality: empty_output_streak in 5 of 100 "
                          "measured frames, blurred in 2 of 100 measured frames; position")
