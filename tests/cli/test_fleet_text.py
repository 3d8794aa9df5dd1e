"""``edgewatch fleet status`` and ``fleet device`` as text (edgewatch.cli.fleet_text): lines
that fit the terminal's width, feature and device names whole, ``--json`` that stays plain
data. The views come from the collector's real store (SQLite) through the command."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from edgewatch.cli import main
from edgewatch.cli.fleet_text import age, blocks, device_text, status_text, table
from edgewatch.collector.store import Item, open_store
from edgewatch.contracts import codec
from support.paths import DATA

EXAMPLE = json.loads((DATA / "summary-example.json").read_text(encoding="utf-8"))
T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC
LONG = "camera-at-the-north-gate-of-site-42"
FEATURES = sorted(EXAMPLE["drift"]["features"])


@pytest.fixture
def collector_config(tmp_path: Path) -> Path:
    """A collector whose SQLite store holds 12 windows of ``cam-1`` and one of ``LONG``."""
    items = []
    for device, windows in (("cam-1", 12), (LONG, 1)):
        for seq in range(1, windows + 1):
            p = copy.deepcopy(EXAMPLE)
            p.update(device=device, boot_id="b1", seq=seq)
            p["window"] = {"start": T0 + 60 * seq, "end": T0 + 60 * (seq + 1), "windows": 1}
            raw = json.dumps(p).encode()
            items.append(Item("summary", "f1", device, codec.decode("summary", raw),
                              time.time(), f"edgewatch/v1/f1/{device}/summary", raw))
    db = tmp_path / "collector.db"
    with open_store(f"sqlite:///{db}") as store:
        store.ingest_many(items)
    config = tmp_path / "collector.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    return config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_fleet_device_fits_the_terminal_and_keeps_feature_names(
        collector_config: Path, columns: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = run(capsys, "fleet", "device", "cam-1", "--config", str(collector_config))
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns, out
    assert lines[0].startswith("device cam-1 (fleet f1): ")
    assert "2026-01-01 00:12:00  warning" in out  # the newest window first
    for name in FEATURES:  # every judged feature, its whole name at the start of a row
        assert any(line.startswith(name + " ") for line in lines), name
    assert all(f"#{i}" in out for i in range(1, 13))  # every window, in as many blocks as need
    position = next(line for line in lines if line.startswith("position "))
    assert "?" in position  # the warning feature is marked


def test_fleet_status_keeps_long_device_names(collector_config: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    lines = run(capsys, "fleet", "status", "--config", str(collector_config)).splitlines()
    assert lines[0].split() == ["device", "fleet", "state", "last", "seen", "drift", "score",
                                "alerts", "gaps"]
    assert {line.split()[0] for line in lines[2:-1]} == {LONG, "cam-1"}
    assert lines[-1] == ("2 devices: 0 online, 0 stale, 2 offline; 0 drifting (offline "
                         "devices not counted)")


def test_json_uses_null_not_a_dash(collector_config: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(run(capsys, "fleet", "status", "--json", "--config",
                          str(collector_config)))
    assert {r["device"] for r in rows} == {LONG, "cam-1"}
    assert all(r["model"] is None for r in rows)  # no birth message yet: null
    text = run(capsys, "fleet", "status", "--json", "--config", str(collector_config))
    assert '"-"' not in text


def test_a_device_without_windows_or_verdicts() -> None:
    view = {"device": "cam-2", "fleet": "f1", "online": True, "last_seen": T0 - 5,
            "model": "ssd", "reference_id": "r1", "active_alerts": 0, "gaps": 0, "windows": []}
    assert device_text(view, T0).endswith("\nno summaries yet")
    window = {"start": T0, "severity": None, "score": None, "frames": {"seen": 3},
              "features": {}}
    text = device_text({**view, "windows": [window]}, T0, columns=80)
    assert "2026-01-01 00:00:00  -" in text
    assert text.endswith("no feature was judged in these windows")


def test_status_text_orders_drift_first_and_counts_like_the_metrics() -> None:
    def row(device: str, severity: str | None, state: str = "online") -> dict[str, object]:
        return {"device": device, "fleet": "f1", "state": state, "last_seen": T0 - 30,
                "drift_severity": severity, "drift_score": None if severity is None else 1.0,
                "drifting": severity == "drift" and state != "offline", "active_alerts": 0,
                "gaps": 0}

    text = status_text([row("a", None), row("b", "ok"), row("c", "drift"),
                        row("d", "drift", "offline")], T0)
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[2:-1]] == ["c", "d", "b", "a"]
    assert "OFFLINE" in lines[3]
    assert lines[-1].endswith("1 drifting (offline devices not counted)")


def test_blocks_wrap_columns_and_repeat_the_labels() -> None:
    columns = [(f"#{i}", ["1.0", "22.0"]) for i in range(1, 9)]
    lines = blocks(["short", "a_longer_name"], columns, 40, "feature")
    assert max(len(line) for line in lines) <= 40
    assert sum(line.startswith("feature") for line in lines) == 2
    assert sum(line.startswith("a_longer_name ") for line in lines) == 2
    assert table(["a", "n"], [["x", "1"], ["yy", "10"]], [False, True]) == [
        "a    n", "x    1", "yy  10"]


def test_ages_are_given_in_a_readable_unit() -> None:
    assert [age(T0, T0 - s) for s in (5, 600, 36_000, 864_000)] == [
        "5s ago", "10m ago", "10h ago", "10d ago"]
    assert age(T0, None) == "never"
