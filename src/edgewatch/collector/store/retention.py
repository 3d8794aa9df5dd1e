"""Retention and decommissioning: what the store forgets, and how, on both backends.

Retention (:func:`prune_device`, run by :meth:`Store.prune` once per device)
    Summaries whose window started in an hour that ended more than ``raw_s`` ago are merged
    into one **hourly rollup** per (device, hour, reference id); those whose day ended more
    than ``hourly_s`` ago into one **daily rollup** per (device, UTC day, reference id);
    summaries whose window ended more than ``daily_s`` ago are deleted (``daily_s`` 0: kept
    forever). Merges are exact (:func:`edgewatch.collector.rollup.merge_summaries`).

    A rollup is an ordinary ``summary`` row: kind ``summary``, ``window.windows`` > 1, its
    ``merged_seqs`` listing every original seq, keyed ``(device, "rollup:hour:<t>" or
    "rollup:day:<t>", <smallest original seq>)`` -- the boot id is the marker
    (:func:`is_rollup`). ``Store.summaries``, the fleet views and the metrics read it like any
    summary. The original seqs are written to ``covered``, so the gap count does not change.

    Concurrency: each bucket is rolled up in its own write transaction that first takes the
    retention lock (``pg_advisory_xact_lock``; SQLite writers take turns anyway), then reads
    the bucket afresh: two collectors pruning one database do the work once, and a second
    pass finds nothing to do. Rows are deleted by their exact keys, so a message ingested
    meanwhile is never lost: it stays raw until the next pass, which merges it into the
    bucket's rollup. A late message whose seq the rollup already lists (a re-delivered
    copy) is dropped by that pass instead of being counted twice.

Alerts (``alerts_s``)
    Alert messages received more than ``alerts_s`` ago are deleted, except the latest
    message of an alert that is still active (it would vanish from ``alerts list``).

Deleted seqs
    Whatever is deleted is first written to ``covered``; then the ``covered`` seqs below the
    device's smallest stored seq are dropped: gaps are counted over what is kept, and
    gaps in forgotten history are forgotten with it.

Decommissioning (:func:`decommission`)
    The device's row leaves ``devices`` (so the fleet views and the metrics no longer list
    it), its active alerts are closed in place (the latest message of each is rewritten to
    ``resolved``: history is changed on purpose, the device will not resolve them) and it
    is recorded in ``decommissioned``. With ``purge``, its messages, covered seqs and
    reference profiles are deleted too. A retained status or reference the broker replays
    for it does not bring it back; a live message re-admits it (``writes``, logged).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from edgewatch.collector.rollup import covered_seqs, merge_summaries
from edgewatch.collector.store.drivers import Row, _Driver
from edgewatch.collector.store.errors import StoreError, UnreadableRow
from edgewatch.collector.store.reads import _ACTIVE_STATES_SQL, read_alert, read_summary
from edgewatch.contracts.alert import Alert
from edgewatch.contracts.summary import Summary
from edgewatch.errors import StatsError

log = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 86400.0
ROLLUP_PREFIX = "rollup:"
LOCK = 0x6577_7265_7465_6E74  # "ewretent": the advisory lock of retention and decommission

_INSERT_COVERED = "INSERT INTO covered (device, seq) VALUES (?, ?) ON CONFLICT DO NOTHING"
_DELETE_MESSAGE = "DELETE FROM messages WHERE device = ? AND boot_id = ? AND seq = ?"
_INSERT_MESSAGE = (
    "INSERT INTO messages (device, boot_id, seq, kind, fleet, received, window_start, "
    "window_end, historical, alert_id, alert_state, payload) "
    "VALUES (?, ?, ?, 'summary', ?, ?, ?, ?, ?, NULL, NULL, ?)"
)
_LATEST_ACTIVE = (
    f"alert_state IN ({_ACTIVE_STATES_SQL}) AND (alert_id IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM messages n WHERE n.device = messages.device AND n.kind = 'alert' "
    "AND n.alert_id = messages.alert_id AND n.seq > messages.seq))"
)


@dataclass(frozen=True)
class Retention:
    """How long the store keeps what, in seconds (0: forever where allowed)."""

    raw_s: float = 7 * DAY
    hourly_s: float = 90 * DAY
    daily_s: float = 730 * DAY
    """0: daily rollups are kept forever."""
    alerts_s: float = 365 * DAY
    """0: alert messages are kept forever."""
    quarantine_s: float = 30 * DAY
    """0: quarantined messages are kept until purged by hand."""

    def __post_init__(self) -> None:
        values = (self.raw_s, self.hourly_s, self.daily_s, self.alerts_s, self.quarantine_s)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise StoreError("retention periods must be finite and not negative")
        if self.hourly_s < self.raw_s:
            raise StoreError("retention: hourly rollups cannot end before raw windows do "
                             "(hourly_days >= raw_days)")
        if self.daily_s and self.daily_s < self.hourly_s:
            raise StoreError("retention: daily rollups cannot end before hourly ones do "
                             "(daily_days >= hourly_days, or 0 for forever)")


@dataclass
class PruneReport:
    """What one pass did (or, dry, would do)."""

    devices: int = 0
    hourly: int = 0
    """Hourly rollups written (a rollup rewritten with late windows counts again)."""
    daily: int = 0
    merged: int = 0
    """Stored summaries merged into rollups (rollups merged again included)."""
    duplicates: int = 0
    """Late copies of windows a rollup already holds, dropped."""
    expired: int = 0
    """Summaries (rollups included) older than ``daily_s``, deleted."""
    alerts: int = 0
    quarantine: int = 0
    unmergeable: int = 0
    """Buckets left as they are: a summary does not decode, or bins disagree (logged)."""
    dry_run: bool = False

    def add(self, other: PruneReport) -> None:
        for name in ("hourly", "daily", "merged", "duplicates", "expired", "alerts",
                     "quarantine", "unmergeable"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def text(self) -> str:
        head = "would prune" if self.dry_run else "pruned"
        return (f"{head} {self.devices} device(s): {self.merged} summaries merged into "
                f"{self.hourly} hourly and {self.daily} daily rollups, {self.duplicates} "
                f"duplicate(s) dropped, {self.expired} expired; {self.alerts} alert "
                f"message(s), {self.quarantine} quarantined message(s) deleted"
                + (f"; {self.unmergeable} bucket(s) left unmerged (see the log)"
                   if self.unmergeable else ""))


@dataclass
class Decommissioned:
    """What decommissioning a device did."""

    device: str
    fleet: str
    alerts_closed: int = 0
    messages_deleted: int = 0
    """With ``purge``: stored messages deleted."""
    was_known: bool = True
    """False when the store had no row for the device (already decommissioned)."""
    closed: list[str] = field(default_factory=list)
    """Ids of the alerts closed."""


def is_rollup(boot_id: str) -> bool:
    """Whether a stored summary's boot id marks a retention rollup."""
    return boot_id.startswith(ROLLUP_PREFIX)


def _floor(t: float, size: float) -> float:
    return math.floor(t / size) * size


# --------------------------------------------------------------------------- rollups


def _bucket(start: float, now: float, policy: Retention) -> tuple[str, float] | None:
    """('day' | 'hour', bucket start) a window starting at ``start`` rolls up into."""
    day = _floor(start, DAY)
    if day + DAY <= now - policy.hourly_s:
        return "day", day
    hour = _floor(start, HOUR)
    if hour + HOUR <= now - policy.raw_s:
        return "hour", hour
    return None


def candidate_buckets(driver: _Driver, device: str, now: float,
                      policy: Retention) -> list[tuple[str, float]]:
    """The device's buckets holding more than one summary (in the caller's transaction)."""
    cutoff = _floor(now - policy.raw_s, HOUR)
    rows = driver.query("SELECT window_start FROM messages WHERE device = ? AND "
                        "kind = 'summary' AND window_start < ?", (device, cutoff))
    counts: dict[tuple[str, float], int] = defaultdict(int)
    for (start,) in rows:
        if start is None:
            continue
        found = _bucket(float(start), now, policy)
        if found is not None:
            counts[found] += 1
    return sorted(b for b, n in counts.items() if n > 1)


def roll_bucket(driver: _Driver, device: str, resolution: str, start: float,
                report: PruneReport) -> None:
    """Merge the summaries of one bucket, per reference id (in the caller's write
    transaction, which this first locks)."""
    driver.lock(LOCK)
    size = DAY if resolution == "day" else HOUR
    rows = driver.query(
        "SELECT boot_id, seq, fleet, received, historical, payload FROM messages WHERE "
        "device = ? AND kind = 'summary' AND window_start >= ? AND window_start < ?",
        (device, start, start + size))
    groups: dict[str, list[tuple[Row, Summary]]] = defaultdict(list)
    for row in rows:
        try:
            s = read_summary(row[-1])
        except UnreadableRow as exc:
            log.warning("retention: %.130r boot %.130r seq %s left as it is: %s", device,
                        row[0], row[1], exc)
            report.unmergeable += 1
            continue
        groups[s.reference_id].append((row, s))
    for reference_id, members in sorted(groups.items()):
        if len(members) > 1:
            _roll(driver, device, resolution, start, reference_id, members, report)


def _roll(driver: _Driver, device: str, resolution: str, start: float, reference_id: str,
          members: list[tuple[Row, Summary]], report: PruneReport) -> None:
    # rollups first, then by seq: a late copy of a window a rollup holds is a duplicate
    members.sort(key=lambda m: (not is_rollup(str(m[0][0])), int(m[0][1])))
    held: set[int] = set()
    kept: list[tuple[Row, Summary]] = []
    for row, s in members:
        seqs = set(covered_seqs(s))
        if held and seqs <= held:
            report.duplicates += 1
            continue
        if seqs & held:
            log.warning("retention: %.130r seq %s overlaps windows already merged: "
                        "merged anyway", device, row[1])
        held |= seqs
        kept.append((row, s))
    seq = min(held)
    boot_id = f"{ROLLUP_PREFIX}{resolution}:{int(start)}"
    try:
        merged = merge_summaries([s for _, s in kept], device=device, boot_id=boot_id,
                                 seq=seq)
    except StatsError as exc:
        log.warning("retention: %.130r %s bucket %s (reference %.130r) left as it is: %s",
                    device, resolution, int(start), reference_id, exc)
        report.unmergeable += 1
        return
    latest = max((r for r, _ in kept), key=lambda r: float(r[3]))
    driver.execute_many(_INSERT_COVERED, [(device, s) for s in sorted(held)])
    driver.execute_many(_DELETE_MESSAGE, sorted((device, str(r[0]), int(r[1]))
                                                for r, _ in members))
    payload = msgspec.json.encode(merged).decode("utf-8")
    driver.execute_many(_INSERT_MESSAGE, [(
        device, boot_id, seq, str(latest[2]), float(latest[3]), merged.window.start,
        merged.window.end, merged.historical, payload)])
    report.merged += len(kept)
    if resolution == "day":
        report.daily += 1
    else:
        report.hourly += 1


# --------------------------------------------------------------------------- deleting


def _forget(driver: _Driver, device: str, where: str, params: Sequence[object]) -> int:
    """Delete the device's messages matching ``where``, their seqs kept in ``covered``."""
    found = driver.query(f"SELECT boot_id, seq FROM messages WHERE device = ? AND {where}",
                         (device, *params))
    if not found:
        return 0
    driver.execute_many(_INSERT_COVERED, sorted({(device, int(r[1])) for r in found}))
    driver.execute_many(_DELETE_MESSAGE, sorted((device, str(b), int(s)) for b, s in found))
    return len(found)


def _trim_covered(driver: _Driver, device: str) -> None:
    """Drop covered seqs below the device's smallest stored seq (every one when it has no
    message left)."""
    low = driver.query("SELECT MIN(seq) FROM messages WHERE device = ?", (device,))[0][0]
    if low is None:
        driver.query("DELETE FROM covered WHERE device = ?", (device,))
    else:
        driver.query("DELETE FROM covered WHERE device = ? AND seq < ?", (device, int(low)))


def expire(driver: _Driver, device: str, now: float, policy: Retention,
           report: PruneReport) -> None:
    """Delete the device's summaries older than ``daily_s`` and alert messages older than
    ``alerts_s`` (in the caller's write transaction, which this first locks)."""
    driver.lock(LOCK)
    deleted = 0
    if policy.daily_s:
        deleted += _forget(driver, device, "kind = 'summary' AND window_end < ?",
                           (now - policy.daily_s,))
        report.expired += deleted
    if policy.alerts_s:
        alerts = _forget(driver, device,
                         f"kind = 'alert' AND received < ? AND NOT ({_LATEST_ACTIVE})",
                         (now - policy.alerts_s,))
        report.alerts += alerts
        deleted += alerts
    if deleted:
        _trim_covered(driver, device)


def pruned_devices(driver: _Driver) -> list[str]:
    return [str(r[0]) for r in driver.query(
        "SELECT DISTINCT device FROM messages WHERE kind IN ('summary', 'alert') "
        "ORDER BY device")]


# --------------------------------------------------------------------------- devices


def _closed(alert: Alert, now: float) -> Alert:
    note = " (closed: the device was decommissioned)"
    message = (alert.message[:4096 - len(note)] + note) if alert.message else note.strip(" ()")
    return msgspec.structs.replace(alert, state="resolved", updated=max(now, alert.since),
                                   message=message, snoozed_until=None)


def decommission(driver: _Driver, device: str, now: float, purge: bool) -> Decommissioned:
    """Remove a device from the fleet (in the caller's write transaction); see the module.
    StoreError when the store never heard of it."""
    driver.lock(LOCK)
    row = driver.query("SELECT fleet FROM devices WHERE device = ?", (device,))
    known = bool(row)
    if not row:
        row = driver.query("SELECT fleet FROM decommissioned WHERE device = ?", (device,))
    if not row:
        row = driver.query("SELECT fleet FROM messages WHERE device = ? LIMIT 1", (device,))
    if not row:
        raise StoreError(f"unknown device {device[:130]!r}")
    out = Decommissioned(device, str(row[0][0]), was_known=known)
    active = driver.query("SELECT boot_id, seq, payload FROM messages WHERE device = ? AND "
                          f"kind = 'alert' AND {_LATEST_ACTIVE}", (device,))
    for boot_id, seq, payload in active:
        try:
            alert = read_alert(payload)
            text = msgspec.json.encode(_closed(alert, now)).decode("utf-8")
        except UnreadableRow:
            alert, text = None, payload  # unreadable: only the state column changes
        driver.query("UPDATE messages SET alert_state = 'resolved', payload = ? WHERE "
                     "device = ? AND boot_id = ? AND seq = ?", (text, device, boot_id, seq))
        out.alerts_closed += 1
        out.closed.append(alert.id if alert is not None else f"{boot_id}#{seq}")
    if purge:
        out.messages_deleted = len(driver.query(
            "DELETE FROM messages WHERE device = ? RETURNING seq", (device,)))
        driver.query("DELETE FROM covered WHERE device = ?", (device,))
        driver.query('DELETE FROM "references" WHERE device = ?', (device,))
    driver.query("DELETE FROM devices WHERE device = ?", (device,))
    driver.query("INSERT INTO decommissioned (device, fleet, since) VALUES (?, ?, ?) "
                 "ON CONFLICT (device) DO UPDATE SET since = excluded.since",
                 (device, out.fleet, now))
    return out
