"""Operator views of the fleet (edgewatch.collector.fleet_report): the status table, one
device's windows, their JSON forms."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from edgewatch.cli.fleet_text import device_text, status_text
from edgewatch.collector.fleet_report import device_row, device_view
from edgewatch.collector.store import DeviceState
from edgewatch.contracts import codec
from edgewatch.contracts.status import Manifest
from edgewatch.contracts.summary import Summary
from support.paths import DATA

EXAMPLE = json.loads((DATA / "summary-example.json").read_text())
T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC
NOW = T0 + 3600.0


def summary(device: str, seq: int, severity: str | None = "warning") -> Summary:
    p: dict[str, Any] = copy.deepcopy(EXAMPLE)
    p["window"] = {"start": T0 + 10.0 * seq, "end": T0 + 10.0 * (seq + 1), "windows": 1}
    p.update(device=device, boot_id="b1", seq=seq)
    if severity is None:
        del p["drift"]
    else:
        p["drift"]["severity"] = severity
    decoded = codec.decode("summary", json.dumps(p).encode())
    assert isinstance(decoded, Summary)
    return decoded


def state(device: str, *, online: bool = True, last_seen: float | None = NOW - 30,
          last: Summary | None = None, alerts: int = 0, gaps: int = 0) -> DeviceState:
    manifest = Manifest(device=device, fleet="f1", boot_id="b1", started=T0, model_name="ssd",
                        model_sha256="ab" * 32, adapter="ssd", reference_id="r1",
                        config_sha256="")
    return DeviceState(device=device, fleet="f1", online=online, status_time=last_seen,
                       last_seen=last_seen, boot_id="b1", manifest=manifest,
                       last_summary=last, last_window_end=None if last is None
                       else last.window.end, summaries=0 if last is None else 1,
                       historical=0, active_alerts=alerts, gaps=gaps)


def test_rows_say_what_an_operator_asks_first() -> None:
    row = device_row(state("cam-1", last=summary("cam-1", 3, "drift"), alerts=2))
    assert (row["device"], row["online"], row["drift_severity"], row["active_alerts"]) == (
        "cam-1", True, "drift", 2)
    assert row["model"] == "ssd" and row["reference_id"] == "r1"
    assert device_row(state("cam-2"))["drift_severity"] is None  # JSON null, not "-"
    assert json.dumps(row)  # the --json form is plain data


def test_the_status_table_puts_drift_first_and_devices_without_a_verdict_last() -> None:
    devices = [state("a-quiet"), state("b-ok", last=summary("b-ok", 1, "ok")),
               state("c-drift", last=summary("c-drift", 1, "drift"), gaps=4),
               state("d-gone", online=False, last_seen=None)]
    lines = status_text([device_row(d, NOW) for d in devices], NOW).splitlines()
    assert [line.split()[0] for line in lines[2:-1]] == ["c-drift", "b-ok", "a-quiet", "d-gone"]
    assert lines[2].split()[2:5] == ["online", "30s", "ago"]
    assert lines[2].split()[-1] == "4"
    assert "OFFLINE" in lines[5] and "never" in lines[5]
    assert lines[-1] == ("4 devices: 3 online, 0 stale, 1 offline; 1 drifting (offline "
                         "devices not counted)")


def test_ages_are_given_in_a_readable_unit() -> None:
    ages = {seen: status_text([device_row(state("cam-1", last_seen=NOW - seen), NOW)],
                              NOW).splitlines()[2]
            for seen in (5, 600, 36_000, 864_000)}
    assert "5s ago" in ages[5] and "10m ago" in ages[600]
    assert "10h ago" in ages[36_000] and "10d ago" in ages[864_000]


def test_a_device_view_lists_its_windows_and_flagged_features() -> None:
    windows = [summary("cam-1", 0, "warning"), summary("cam-1", 1, None)]
    view = device_view(state("cam-1", last=windows[-1]), windows)
    assert view["manifest"]["model_name"] == "ssd"
    first, second = view["windows"]
    assert (first["start"], first["severity"], second["severity"]) == (T0, "warning", None)
    assert second["features"] == {} and second["score"] is None
    assert first["features"]["position"]["status"] == "warning"
    box_area = EXAMPLE["drift"]["features"]["box_area"]["effect"]
    assert first["features"]["box_area"]["status"] == "ok"
    assert first["features"]["box_area"]["effect"] == pytest.approx(box_area, abs=1e-3)
    assert json.dumps(view)  # JSON as it is: null where nothing was judged
    # the text form of a view: tests/cli/test_fleet_text.py


def test_a_device_without_summaries_says_so() -> None:
    view = device_view(state("cam-1"), [])
    assert view["windows"] == []
    assert device_text(view, NOW).endswith("\nno summaries yet")
