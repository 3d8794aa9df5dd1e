"""The quarantine operator commands (edgewatch.collector.quarantine) on a real SQLite store:
listing (escaped for the terminal, or JSON with the bytes) and purging."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewatch.collector.quarantine import (
    format_table,
    list_command,
    parse_time,
    preview,
    printable,
    purge_command,
    run,
)
from edgewatch.collector.store import Quarantined, Store, open_store
from edgewatch.errors import ConfigError

T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as s:
        s.quarantine([
            Quarantined(T0, "edgewatch/v1/f1/cam-1/summary", "store", "value too large",
                        b'{"seq": 1}'),
            Quarantined(T0 + 3600, "edgewatch/v1/f1/cam-\x1b[2J/alert", "store",
                        "bad\nline", b"\x00\xff\\" + b"a" * 60),
        ])
        yield s


def test_times_are_iso_8601_utc_unless_they_name_a_zone() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time(" 2026-01-01T00:00:00 ") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    with pytest.raises(ConfigError, match="bad time 'yesterday': expected ISO 8601"):
        parse_time("yesterday")


def test_control_characters_never_reach_the_terminal() -> None:
    assert printable("cam-\x1b[2J\n", 100) == "cam-\\x1b[2J\\n"
    assert printable("abcdef", 3) == "abc..."
    assert preview(b"ok \x00\xff\\") == "ok \\x00\\xff\\x5c"
    assert preview(b"a" * 50, 48) == "a" * 48 + "..."


def test_the_table_lists_newest_first_escaped(store: Store) -> None:
    text = list_command(store, 50, as_json=False)
    lines = text.splitlines()
    assert lines[0].startswith("#2  2026-01-01 01:00:00 UTC  store  63 bytes  "
                               "edgewatch/v1/f1/cam-\\x1b[2J/alert")
    assert lines[1] == "    why: bad\\nline"
    assert lines[2] == "    payload: \\x00\\xff\\x5c" + "a" * 45 + "..."
    assert lines[3].startswith("#1  2026-01-01 00:00:00 UTC  store  10 bytes")
    assert lines[-1] == "2 quarantined messages"
    assert "\x1b" not in text
    assert format_table([]) == "quarantine is empty"


def test_json_keeps_the_bytes(store: Store) -> None:
    rows = json.loads(list_command(store, 1, as_json=True))
    assert len(rows) == 1 and rows[0]["id"] == 2 and rows[0]["size"] == 63
    assert base64.b64decode(rows[0]["payload_base64"]) == b"\x00\xff\\" + b"a" * 60


def test_purge_before_a_time_or_everything(store: Store) -> None:
    with pytest.raises(ConfigError, match="either --all or --before"):
        purge_command(store, True, "2026-01-01T00:30:00Z")
    with pytest.raises(ConfigError, match="either --all or --before"):
        purge_command(store, False, None)
    assert purge_command(store, False, "2026-01-01T00:30:00Z") == "purged 1 quarantined message"
    assert [q.id for q in store.quarantined()] == [2]
    assert purge_command(store, True, None) == "purged 1 quarantined message"
    assert purge_command(store, True, None) == "purged 0 quarantined messages"


def test_run_reads_the_store_from_the_collector_configuration(tmp_path: Path,
                                                              store: Store) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n')
    assert run(str(config), "list").endswith("2 quarantined messages")
    assert run(str(config), "purge", everything=True) == "purged 2 quarantined messages"
    with pytest.raises(ConfigError, match="unknown quarantine command 'show'"):
        run(str(config), "show")
