"""The :class:`Store` and :func:`open_store`: one connection, one lock, one transaction per
public call; the rows it writes and reads are built in :mod:`.writes` and :mod:`.reads`.

Transactions
    Every ``Store`` holds one connection and one lock taken for each whole public call.
    Writes that fail with a transient error (a deadlock or serialisation failure reported
    by PostgreSQL) are rolled back and run again, up to a few times; writes that fail on a
    value the database refuses are reported as one poison item (:class:`RejectedPayload`).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from edgewatch.collector.store import commands as _commands
from edgewatch.collector.store.commands import CommandState, QueuedCommand
from edgewatch.collector.store.drivers import _Driver, _redact
from edgewatch.collector.store.errors import (
    RejectedPayload,
    StoreError,
    _DryRun,
    _first_line,
    _Refused,
)
from edgewatch.collector.store.postgres import _PostgresDriver
from edgewatch.collector.store.reads import (
    _QUARANTINED,
    _REFERENCE,
    _SUMMARIES,
    _alerts_query,
    _count_query,
    _device_states,
    _keys,
    _keys_query,
    _limit,
    _quarantined,
    _readable,
    _reference,
    read_alert,
    read_summary,
)
from edgewatch.collector.store.records import DeviceState, Item, Quarantined
from edgewatch.collector.store.retention import (
    Decommissioned,
    PruneReport,
    Retention,
    candidate_buckets,
    decommission,
    expire,
    pruned_devices,
    roll_bucket,
)
from edgewatch.collector.store.sqlite import _sqlite_path, _SQLiteDriver
from edgewatch.collector.store.writes import (
    _culprit,
    _prepare,
    _purge_query,
    _quarantine_row,
    _write,
)
from edgewatch.contracts.alert import Alert
from edgewatch.contracts.codec import Message
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.summary import Summary
from edgewatch.errors import EdgewatchError

T = TypeVar("T")


def _expire(driver: _Driver, device: str, now: float, policy: Retention,
            part: PruneReport) -> None:
    expire(driver, device, now, policy, part)


def _roll(driver: _Driver, device: str, resolution: str, start: float,
          part: PruneReport) -> None:
    roll_bucket(driver, device, resolution, start, part)

_RETRIES = 5
_RETRY_PAUSE_S = 0.05


def open_store(url: str) -> Store:
    """Open (and create the schema of) the store at ``url``; see
    :mod:`edgewatch.collector.store`."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    try:
        if scheme == "sqlite":
            driver: _Driver = _SQLiteDriver(_sqlite_path(url))
        elif scheme in ("postgresql", "postgres"):
            try:
                driver = _PostgresDriver(url)
            except ImportError as exc:
                raise StoreError("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'"
                                 ) from exc
        else:
            raise StoreError(f"unsupported store URL {_redact(url)!r}: "
                             "expected sqlite:///... or postgresql://...")
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open {url}: {exc}") from exc
    except EdgewatchError:
        raise
    except Exception as exc:  # psycopg.Error: imported lazily
        raise StoreError(f"cannot connect to {_redact(url)}: {exc}") from exc
    store = Store(driver)
    try:
        store._run(write=True, work=driver.create_schema, begin=False)
    except BaseException:
        store.close()
        raise
    return store


class Store:
    """The collector's message store; build it with :func:`open_store`."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._abort()
            try:
                self._driver.close()
            except self._driver.errors as exc:
                raise StoreError(f"{self._driver.where}: {exc}") from exc

    # ----------------------------------------------------------------- transactions

    def _run(self, write: bool, work: Callable[[], T], begin: bool = True) -> T:
        """Run ``work`` in one transaction under the lock; database errors -> StoreError.

        Writes that fail with a transient error (deadlock, serialisation failure) are
        rolled back and run again, up to a few times. Writes that fail on a value (the
        driver or the database refuses it) raise :class:`_Refused`.
        """
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            driver = self._driver
            for attempt in range(_RETRIES + 1):
                try:
                    if begin:
                        driver.begin(write)
                    result = work()
                    driver.commit()
                    return result
                except driver.errors as exc:
                    self._abort()
                    if write and driver.refused(exc):
                        raise _Refused(_first_line(exc)) from exc
                    if write and attempt < _RETRIES and driver.transient(exc):
                        time.sleep(_RETRY_PAUSE_S * (attempt + 1))
                        continue
                    raise StoreError(f"{driver.where}: {exc}") from exc
                except (ValueError, OverflowError) as exc:  # a value the driver cannot send
                    self._abort()
                    if write and driver.refused(exc):
                        raise _Refused(_first_line(exc)) from exc
                    raise
                except BaseException:
                    self._abort()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _abort(self) -> None:
        # a failed rollback means the connection is gone: the next begin reconnects (PG)
        with contextlib.suppress(*self._driver.errors):
            self._driver.rollback()

    # ----------------------------------------------------------------- writes

    def ingest(self, kind: str, fleet: str, device: str, message: Message,
               received: float) -> bool:
        """Store one decoded message; True if it was new, False for a duplicate.

        ``summary``, ``alert`` and ``cmd_result`` messages are keyed by their ``device``,
        ``boot_id`` and ``seq`` (RejectedPayload when the boot id is empty, or when the
        message's device is not ``device``) and bump the device's ``last_seen``. ``status``
        updates the device row (online state, status time, boot id, manifest of a birth)
        and returns True. ``reference`` is kept by (device, reference id).
        """
        return self.ingest_many([Item(kind, fleet, device, message, received)])[0]

    def ingest_many(self, items: Sequence[Item],
                    quarantine: Sequence[Quarantined] = ()) -> list[bool]:
        """Store a batch in one transaction; one ``ingest`` result per item, in order.

        A bad item raises :class:`RejectedPayload` naming it, and nothing is written: one
        that cannot be turned into rows at once, one whose values the database refuses
        after a trial of each item alone. The caller drops it (into ``quarantine``) and
        ingests the rest again. ``quarantine`` entries are written in the same
        transaction. Other StoreErrors (database unreachable...) may be retried.
        """
        batch = _prepare(items)
        kept = [_quarantine_row(q) for q in quarantine]
        if not items and not kept:
            return []
        driver = self._driver
        try:
            return self._run(write=True, work=lambda: _write(driver, batch, len(items), kept))
        except _Refused as exc:
            culprit = _culprit(lambda trial: self._run(write=True, work=trial), driver, batch,
                               len(items))
            if culprit is None:
                raise StoreError(f"{driver.where}: the batch was refused, yet each of "
                                 f"its items alone is accepted: {exc.detail}") from exc
            raise RejectedPayload(*culprit) from exc

    def quarantine(self, entries: Sequence[Quarantined]) -> None:
        """Keep messages the store refused (as ``ingest_many(..., quarantine=...)``)."""
        self.ingest_many([], entries)

    def purge_quarantine(self, before: float | None = None) -> int:
        """Delete the quarantined messages received before ``before`` (every one when
        None); how many were deleted."""
        sql, params = _purge_query(before)
        return len(self._run(True, lambda: self._driver.query(sql, params)))

    def prune(self, policy: Retention, now: float, dry_run: bool = False) -> PruneReport:
        """One retention pass at time ``now`` (:mod:`.retention`): summaries rolled up
        hourly then daily, old summaries, alerts and quarantined messages deleted. Each
        bucket (and each device's deletions) is one transaction, so two collectors or a
        running ingest may share the store; ``dry_run`` rolls every one back."""
        report = PruneReport(dry_run=dry_run)
        driver = self._driver

        def step(work: Callable[[PruneReport], None]) -> None:
            part = PruneReport()

            def run() -> None:
                work(part)
                if dry_run:
                    raise _DryRun

            with contextlib.suppress(_DryRun):
                self._run(True, run)
            report.add(part)

        devices = self._run(False, lambda: pruned_devices(driver))
        report.devices = len(devices)
        for device in devices:
            step(functools.partial(_expire, driver, device, now, policy))
            buckets = self._run(False, functools.partial(candidate_buckets, driver, device,
                                                         now, policy))
            for resolution, start in buckets:
                step(functools.partial(_roll, driver, device, resolution, start))
        if policy.quarantine_s:
            sql, params = _purge_query(now - policy.quarantine_s)

            def purge(part: PruneReport) -> None:
                part.quarantine = len(driver.query(sql, params))

            step(purge)
        return report

    def decommission(self, device: str, now: float, purge: bool = False) -> Decommissioned:
        """Remove ``device`` from the fleet in one transaction (:mod:`.retention`): out of
        ``devices``, its active alerts closed, recorded as decommissioned; ``purge``
        deletes its history too. StoreError when the store never heard of it."""
        return self._run(True, lambda: decommission(self._driver, device, now, purge))

    # ----------------------------------------------------------------- reads

    def quarantined(self, limit: int = 100) -> list[Quarantined]:
        """The messages kept in quarantine, newest first."""
        rows = self._run(False, lambda: self._driver.query(_QUARANTINED, (_limit(limit),)))
        return _quarantined(rows)

    def reference(self, device: str, reference_id: str) -> Reference | None:
        """The reference profile a device published under ``reference_id`` (None when the
        store has none)."""
        rows = self._run(False, lambda: self._driver.query(_REFERENCE, (device, reference_id)))
        return _reference(rows)

    def devices(self) -> list[DeviceState]:
        """Every known device, sorted by id."""
        return self._run(write=False, work=lambda: _device_states(self._driver, None))

    def device(self, device: str) -> DeviceState | None:
        """One device, or None if the store never heard of it."""
        found = self._run(write=False, work=lambda: _device_states(self._driver, device))
        return found[0] if found else None

    def summaries(self, device: str, limit: int = 20) -> list[Summary]:
        """The device's summaries (schema 2), newest window first; rows that do not decode
        are left out (and logged)."""
        rows = self._run(False, lambda: self._driver.query(_SUMMARIES, (device, _limit(limit))))
        return _readable(rows, read_summary)

    def alerts(self, device: str | None = None, limit: int = 100) -> list[Alert]:
        """Alert messages, newest first (by seq for one device, by arrival for all); rows
        that do not decode are left out (and logged)."""
        sql, params = _alerts_query(device, limit)
        rows = self._run(False, lambda: self._driver.query(sql, params))
        return _readable(rows, read_alert)

    def count(self, kind: str | None = None) -> int:
        """Stored messages, of one kind or all."""
        sql, params = _count_query(kind)
        rows = self._run(False, lambda: self._driver.query(sql, params))
        return int(rows[0][0])

    def keys(self, kind: str | None = None) -> list[tuple[str, str, int]]:
        """The (device, boot_id, seq) keys stored, sorted."""
        sql, params = _keys_query(kind)
        rows = self._run(False, lambda: self._driver.query(sql, params))
        return _keys(rows)

    # ----------------------------------------------------------------- queued commands

    def queue_command(self, command: QueuedCommand) -> bool:
        """Keep an operator's command (:mod:`.commands`); False when its id is known."""
        row = _commands.insert_row(command)
        return self._run(True, lambda: self._driver.insert_new(_commands.INSERT, [row]))[0]

    def commands(self, device: str | None = None, states: Sequence[str] | None = None,
                 limit: int = 100) -> list[QueuedCommand]:
        """Kept commands, of one device or all, in some states or all, newest first."""
        sql, params = _commands.select_query(device, states, limit)
        return _commands.read(self._run(False, lambda: self._driver.query(sql, params)))

    def command_state(self, command_id: str, state: CommandState, now: float,
                      result: dict[str, Any] | None = None) -> bool:
        """Move an open (queued or sent) command to ``state``; False when there is no such
        open command."""
        sql, params = _commands.transition(command_id, state, now, result)
        return bool(self._run(True, lambda: self._driver.query(sql, params)))

    def expire_commands(self, before: float, now: float) -> int:
        """Mark open commands created before ``before`` as expired; how many."""
        return len(self._run(True, lambda: self._driver.query(_commands.EXPIRE,
                                                              (now, before))))
