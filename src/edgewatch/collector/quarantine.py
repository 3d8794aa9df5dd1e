"""The ``quarantine`` operator commands: list and purge the messages the store refused.

The ingest keeps a message the store cannot take (a value out of a column's range...) in the
store's ``quarantine`` table, bytes and topic as received, and acknowledges it so that it
never stalls the fleet (see :mod:`edgewatch.collector.ingest`). These functions show them to
an operator and delete them once understood. Everything printed is escaped: a topic, a detail
or a payload cannot put control characters on the operator's terminal.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from typing import Any

from edgewatch.collector.store import Quarantined, Store, open_store
from edgewatch.errors import ConfigError

PREVIEW_BYTES = 48
"""Payload bytes shown in the table."""


def parse_time(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time (UTC when it names no zone)."""
    try:
        stamp = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"bad time {text[:80]!r}: expected ISO 8601, e.g. "
                          "2026-01-31T12:00:00Z") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    t = stamp.timestamp()
    if not math.isfinite(t):
        raise ConfigError(f"bad time {text[:80]!r}")
    return t


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, control characters escaped."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def preview(payload: bytes, limit: int = PREVIEW_BYTES) -> str:
    """The first ``limit`` bytes, printable ASCII as is and the rest escaped."""
    head = "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}"
                   for b in payload[:limit])
    return head + ("..." if len(payload) > limit else "")


def row(q: Quarantined) -> dict[str, Any]:
    """One quarantined message as JSON (the payload base64-encoded)."""
    return {"id": q.id, "received": q.received, "topic": q.topic, "reason": q.reason,
            "detail": q.detail, "size": len(q.payload),
            "payload_base64": base64.b64encode(q.payload).decode("ascii")}


def format_table(entries: list[Quarantined]) -> str:
    """A readable listing, newest first."""
    if not entries:
        return "quarantine is empty"
    lines = []
    for q in entries:
        lines.append(f"#{q.id}  {_utc(q.received)} UTC  {q.reason}  {len(q.payload)} bytes  "
                     f"{printable(q.topic, 200)}")
        lines.append(f"    why: {printable(q.detail, 300)}")
        lines.append(f"    payload: {preview(q.payload)}")
    lines.append(f"{len(entries)} quarantined message" + ("s" if len(entries) != 1 else ""))
    return "\n".join(lines)


def list_command(store: Store, limit: int, as_json: bool) -> str:
    entries = store.quarantined(limit)
    return json.dumps([row(q) for q in entries], indent=1) if as_json else format_table(entries)


def purge_command(store: Store, everything: bool, before: str | None) -> str:
    if everything == (before is not None):
        raise ConfigError("quarantine purge: give either --all or --before ISO_TIME")
    deleted = store.purge_quarantine(None if before is None else parse_time(before))
    return f"purged {deleted} quarantined message" + ("s" if deleted != 1 else "")


def run(config: str, command: str, *, limit: int = 50, as_json: bool = False,
        everything: bool = False, before: str | None = None) -> str:
    """What ``edgewatch quarantine <command>`` prints, for the collector configuration
    ``config``."""
    from edgewatch.config.collector import load_collector_config

    cfg = load_collector_config(config)
    with open_store(cfg.store.url) as store:
        if command == "list":
            return list_command(store, limit, as_json)
        if command == "purge":
            return purge_command(store, everything, before)
    raise ConfigError(f"unknown quarantine command {command!r}")
