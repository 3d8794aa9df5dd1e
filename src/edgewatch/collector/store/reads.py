"""The read side: the queries the store answers and how their rows become values.

Stored payloads that do not decode into their contract (:class:`UnreadableRow`) are left
out of the answers and logged with their key, never raised to the reader. The functions
here that query (``_device_states``) run in the read transaction of the caller; the others
build a statement or read its rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec

from edgewatch.collector.store.drivers import Row, _Driver
from edgewatch.collector.store.errors import StoreError, UnreadableRow
from edgewatch.collector.store.records import (
    ACTIVE_ALERT_STATES,
    MESSAGE_KINDS,
    DeviceState,
    Quarantined,
)
from edgewatch.contracts.alert import Alert
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.status import Manifest
from edgewatch.contracts.summary import Summary
from edgewatch.contracts.summary_v1 import SummaryV1, compact

log = logging.getLogger(__name__)

T = TypeVar("T")

_ACTIVE_STATES_SQL = ", ".join(f"'{s}'" for s in ACTIVE_ALERT_STATES)
_QUARANTINED = ("SELECT id, received, topic, reason, detail, payload FROM quarantine "
                "ORDER BY received DESC, id DESC LIMIT ?")
_REFERENCE = 'SELECT payload FROM "references" WHERE device = ? AND reference_id = ?'
_SUMMARIES = ("SELECT device, boot_id, seq, payload FROM messages WHERE device = ? "
              "AND kind = 'summary' ORDER BY window_end DESC, seq DESC LIMIT ?")


# --------------------------------------------------------------------------- payloads


def _decode(text: str | bytes, kind: Any, what: str) -> Any:
    try:
        return msgspec.json.decode(text, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise UnreadableRow(f"stored {what} does not decode: {str(exc)[:200]}") from None
    except (RecursionError, TypeError) as exc:
        raise UnreadableRow(f"stored {what} does not decode: {type(exc).__name__}") from None


def read_summary(text: str | bytes) -> Summary:
    """A stored summary as schema 2: rows stored as schema 1 JSON are compacted.
    UnreadableRow when the text is not a summary within the contract's bounds."""
    found = _decode(text, Summary | SummaryV1, "summary")
    return compact(found) if isinstance(found, SummaryV1) else found


def read_alert(text: str | bytes) -> Alert:
    """A stored alert message (UnreadableRow when it does not decode)."""
    alert: Alert = _decode(text, Alert, "alert")
    return alert


def read_manifest(text: str | bytes) -> Manifest:
    """A stored birth manifest (UnreadableRow when it does not decode)."""
    manifest: Manifest = _decode(text, Manifest, "manifest")
    return manifest


def _readable(rows: Sequence[Row], read: Callable[[str], T]) -> list[T]:
    """The payloads (last column) of ``rows`` that decode; the others are logged with
    their key (the first three columns) and left out."""
    out = []
    for row in rows:
        try:
            out.append(read(row[-1]))
        except UnreadableRow as exc:
            log.warning("skipping %.130r boot %.130r seq %s: %s", row[0], row[1], row[2], exc)
    return out


# --------------------------------------------------------------------------- statements


def _alerts_query(device: str | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """Alert messages, newest first (by seq for one device, by arrival for all)."""
    if device is None:
        sql = ("SELECT device, boot_id, seq, payload FROM messages WHERE kind = 'alert' "
               "ORDER BY received DESC, device, seq DESC LIMIT ?")
        params: tuple[Any, ...] = (_limit(limit),)
    else:
        sql = ("SELECT device, boot_id, seq, payload FROM messages WHERE kind = 'alert' "
               "AND device = ? ORDER BY seq DESC LIMIT ?")
        params = (device, _limit(limit))
    return sql, params


def _count_query(kind: str | None) -> tuple[str, tuple[Any, ...]]:
    where, params = _kind_filter(kind)
    return f"SELECT COUNT(*) FROM messages{where}", params


def _keys_query(kind: str | None) -> tuple[str, tuple[Any, ...]]:
    where, params = _kind_filter(kind)
    return (f"SELECT device, boot_id, seq FROM messages{where} ORDER BY device, boot_id, seq",
            params)


def _active_alerts_sql(one_device: bool) -> str:
    """Active alerts per device: alert messages in an active state with no later message
    (higher seq) for the same alert id; alerts without an id each stand for themselves."""
    return (
        "SELECT m.device, COUNT(*) FROM messages m WHERE "
        + ("m.device = ? AND " if one_device else "")
        + f"m.kind = 'alert' AND m.alert_state IN ({_ACTIVE_STATES_SQL}) "
        "AND (m.alert_id IS NULL OR NOT EXISTS (SELECT 1 FROM messages n WHERE "
        "n.device = m.device AND n.kind = 'alert' AND n.alert_id = m.alert_id "
        "AND n.seq > m.seq)) GROUP BY m.device"
    )


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise StoreError(f"limit must be a non-negative integer, got {limit!r}")
    return limit


def _kind_filter(kind: str | None) -> tuple[str, tuple[Any, ...]]:
    if kind is None:
        return "", ()
    if kind not in MESSAGE_KINDS:
        raise StoreError(f"unknown message kind {kind!r} (stored kinds: {MESSAGE_KINDS})")
    return " WHERE kind = ?", (kind,)


# --------------------------------------------------------------------------- rows


def _quarantined(rows: Sequence[Row]) -> list[Quarantined]:
    return [Quarantined(float(received), str(topic), str(reason), str(detail),
                        bytes(payload), int(ident))
            for ident, received, topic, reason, detail, payload in rows]


def _reference(rows: Sequence[Row]) -> Reference | None:
    if not rows:
        return None
    found: Reference = _decode(rows[0][0], Reference, "reference")
    return found


def _keys(rows: Sequence[Row]) -> list[tuple[str, str, int]]:
    return [(str(d), str(b), int(s)) for d, b, s in rows]


def _float(value: Any) -> float | None:
    """A number column as a float; None for NULL and for what is not a number (SQLite
    keeps whatever was written into a column)."""
    if value is None or isinstance(value, (bytes, str)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------- devices


def _device_states(driver: _Driver, device: str | None) -> list[DeviceState]:
    """Every device (``device`` None) or one, sorted by id; in the caller's transaction."""
    query = driver.query
    where, params = ("", ()) if device is None else (" WHERE device = ?", (device,))
    base = query("SELECT device, fleet, online, status_time, last_seen, boot_id, manifest "
                 f"FROM devices{where} ORDER BY device", params)
    counts = {r[0]: r[1:] for r in query(
        "SELECT device, SUM(CASE WHEN kind = 'summary' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN historical THEN 1 ELSE 0 END), "
        f"MAX(CASE WHEN kind = 'summary' THEN window_end END) FROM messages{where} "
        "GROUP BY device", params)}
    gaps = {r[0]: int(r[2]) - int(r[1]) + 1 - int(r[3]) for r in query(
        "SELECT device, MIN(seq), MAX(seq), COUNT(*) FROM (SELECT device, seq FROM "
        f"messages{where} UNION SELECT device, seq FROM covered{where}) u GROUP BY device",
        params * 2)}
    active: dict[str, int] = dict(query(_active_alerts_sql(device is not None), params))
    return [_state(driver, row, counts.get(row[0]), gaps.get(row[0], 0),
                   int(active.get(row[0], 0))) for row in base]


def _state(driver: _Driver, row: Row, counts: Row | None, gaps: int,
           active: int) -> DeviceState:
    device, fleet, online, status_time, last_seen, boot_id, manifest_text = row
    summaries, historical, last_end = counts if counts is not None else (0, 0, None)
    unreadable = 0
    manifest = None
    if manifest_text:
        try:
            manifest = read_manifest(manifest_text)
        except UnreadableRow as exc:
            log.warning("device %.130r: %s", device, exc)
            unreadable += 1
    last = None
    if summaries:
        found = driver.query(
            "SELECT device, boot_id, seq, payload FROM messages WHERE device = ? "
            "AND kind = 'summary' ORDER BY window_end DESC, seq DESC LIMIT 1", (device,))
        readable = _readable(found, read_summary)
        last = readable[0] if readable else None
        unreadable += len(found) - len(readable)
    return DeviceState(
        device=device, fleet=fleet, online=bool(online), status_time=_float(status_time),
        last_seen=_float(last_seen), boot_id=boot_id, manifest=manifest, last_summary=last,
        last_window_end=_float(last_end), summaries=int(summaries or 0),
        historical=int(historical or 0), active_alerts=active, gaps=gaps,
        unreadable=unreadable)
