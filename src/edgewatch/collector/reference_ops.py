"""Operators' re-baselining: accept a device's recent windows as its new normal
(:func:`accept`), push a reference built offline, have the device rebuild one from its next
frames, and the history of all three (:func:`history`).

The first two go to the device as the ``reference.push`` command, the third as
``reference.rebuild`` (each queued for an offline device, delivered on its next birth); the
collector keeps every such command with the device's answer, which is the record of who
asked for what and when.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

from edgewatch import clock
from edgewatch.collector.rebaseline import RebaselineError, rebaseline
from edgewatch.collector.store.commands import QueuedCommand
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.summary import Summary

PUSH = "reference.push"
"""The device command that switches its reference."""
REBUILD = "reference.rebuild"
"""The device command that profiles its next frames into a new reference, then switches."""
MAX_WINDOWS = 100_000
"""Stored windows read at most for one acceptance."""


class ReferenceSource(Protocol):
    def summaries(self, device: str, limit: int = 20) -> list[Summary]: ...

    def reference(self, device: str, reference_id: str) -> Reference | None: ...

    def commands(self, device: str | None = None, states: Sequence[str] | None = None,
                 limit: int = 100) -> list[QueuedCommand]: ...


def parse_time(text: str) -> float:
    """Epoch seconds or ISO 8601 (UTC when no zone is given); RebaselineError otherwise."""
    try:
        return clock.parse_time(text)
    except ValueError as exc:
        raise RebaselineError(str(exc)) from exc


def window_range(text: str | None) -> tuple[float, float]:
    """``FROM..TO`` (either side may be empty) as (start, end) in epoch seconds.

    >>> window_range("100..200"), window_range("..50")[1], window_range(None)[0]
    ((100.0, 200.0), 50.0, -inf)
    """
    if not text:
        return float("-inf"), float("inf")
    first, sep, last = text.partition("..")
    if not sep:
        raise RebaselineError(f"--windows {text!r}: expected FROM..TO (ISO 8601 or epoch "
                              "seconds; either may be empty)")
    start = parse_time(first) if first.strip() else float("-inf")
    end = parse_time(last) if last.strip() else float("inf")
    if end <= start:
        raise RebaselineError(f"--windows {text!r}: TO must be after FROM")
    return start, end


def accept(store: ReferenceSource, device: str, windows: str | None, *, created: float,
           by: str = "") -> tuple[Reference, list[Summary]]:
    """The new reference made of the device's stored windows within ``windows`` (all
    stored windows when None) that were judged against its current reference (the one
    of its latest window), and those windows."""
    stored = store.summaries(device, MAX_WINDOWS)
    if not stored:
        raise RebaselineError(f"the collector has no windows of device {device[:130]!r}")
    current = stored[0].reference_id
    base = store.reference(device, current)
    if base is None:
        raise RebaselineError(f"the collector does not have reference {current} of "
                              f"{device[:130]}: it arrives retained when the device starts")
    start, end = window_range(windows)
    parts = [s for s in stored if s.reference_id == current
             and s.window.start >= start and s.window.end <= end]
    if not parts:
        raise RebaselineError(f"no window of {device[:130]} on reference {current} within "
                              f"{windows or 'the store'}")
    parts.sort(key=lambda s: s.window.start)
    span = f"{_utc(parts[0].window.start)}..{_utc(parts[-1].window.end)}"
    source = f"{len(parts)} windows {span} of {device} accepted" + (f" by {by}" if by else "")
    return rebaseline(base, parts, created=created, source=source), parts


def history(store: ReferenceSource, device: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """The reference switches operators asked for, newest first: when, by whom, the
    state of the command and the device's answer (new and previous reference ids; for a
    ``reference.rebuild``, the frames the device profiles: the reference it then switches
    to arrives retained on ``<device>/reference`` and in the device's summaries)."""
    rows = []
    for cmd in store.commands(device, None, max(limit * 10, limit)):
        if cmd.name not in (PUSH, REBUILD):
            continue
        result = cmd.result or {}
        rows.append({
            "device": cmd.device, "requested": cmd.created, "command": cmd.name,
            "by": cmd.args.get("by", ""),
            "note": cmd.args.get("note", ""), "context": cmd.args.get("context", ""),
            "state": cmd.state, "ok": result.get("ok"),
            "reference_id": result.get("reference_id"),
            "previous_reference_id": result.get("previous_reference_id"),
            "rebuild_frames": result.get("rebuild_frames"),
            "error": result.get("error"),
        })
        if len(rows) >= limit:
            break
    return rows


def format_history(rows: list[dict[str, Any]]) -> str:
    """``edgewatch reference history`` as a table."""
    if not rows:
        return "no reference changes recorded"
    lines = [f"{'requested':20} {'device':16} {'by':12} {'state':9} {'reference':17} previous"]
    for r in rows:
        new = r["reference_id"] or ("refused: " + str(r["error"]) if r["ok"] is False else "-")
        if r.get("command") == REBUILD and r["ok"] is not False:
            frames = r["rebuild_frames"]
            new = ("rebuild" if r["ok"] is None else f"rebuild {frames} fr" if frames
                   else "rebuild cancel")
        lines.append(f"{_utc(r['requested']):20} {r['device'][:16]:16} {(r['by'] or '-')[:12]:12}"
                     f" {r['state']:9} {str(new)[:17]:17} {r['previous_reference_id'] or '-'}")
    return "\n".join(lines)


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
