"""One batch of received messages decoded and stored: in the collector's own process, or in
a second one (``store.worker_process``).

The same two steps either way: :func:`decode_raw` turns what arrived (topic, bytes, content
type) into an :class:`~edgewatch.collector.store.Item` through the contracts, and
:func:`store_batch` stores the items in one transaction, keeping in quarantine, in that
same transaction, any message the database refuses.

Python runs one thread at a time in a process, so in one process decoding takes turns with
reading the socket (paho's network thread). :class:`IngestProcess` moves both steps to a
second process, started with ``spawn``, that opens its own connection to the store: the
collector's process then only reads, acknowledges and acts on what was stored, and the two
run on two cores at once (``bench/ingest.py`` measures both ways). A batch goes over as
bytes and topics; what comes back is small (:class:`Outcome`): the kinds stored, the
duplicates, the refusals, and the few messages the collector's process acts on (new alerts
to route, statuses and command results for the queued commands).

The second process ignores SIGINT and SIGTERM (a terminal's Ctrl-C and systemd's stop reach
every process of the service): the collector's process stops it once what was received is
stored; it exits by itself when the collector's process ends otherwise (killed). If it dies
anyway (killed, out of memory), the batch it held was not acknowledged:
:class:`IngestProcess` starts another and the batch is stored again (the store ignores what
it already has).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple, Protocol

from edgewatch.collector import gc_settings
from edgewatch.collector.store import Item, Quarantined, RejectedPayload, open_store
from edgewatch.collector.validate import check
from edgewatch.contracts.alert import Alert
from edgewatch.contracts.codec import Rejected
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.status import Status

log = logging.getLogger(__name__)

__all__ = ["IngestProcess", "Outcome", "Raw", "Refusal", "Sent", "WorkerDied", "decode_raw",
           "outcome_of", "store_batch"]


class Store(Protocol):
    def ingest_many(self, items: Sequence[Item],
                    quarantine: Sequence[Quarantined] = ()) -> list[bool]: ...


class Raw(NamedTuple):
    """A message as received, not yet decoded."""

    topic: str
    payload: bytes
    content_type: str | None
    """The MQTT 5 property (None: recognised from the bytes)."""
    retained: bool
    received: float


class Refusal(NamedTuple):
    """A message refused: ``reason`` is one of the codec's REASONS (``store``: kept in
    quarantine) or ``unexpected`` (the ingest itself failed on it: ``detail`` is the
    exception's type)."""

    reason: str
    topic: str
    detail: str


class Outcome(NamedTuple):
    """What a second process did with a batch."""

    stored: list[str]
    """The kind of every message stored anew."""
    duplicates: int
    refused: list[Refusal]
    follow: list[tuple[Item, bool]]
    """The alerts, statuses and command results of the batch, each with whether it was new:
    what the collector's own process acts on after the commit."""


def decode_raw(raw: Raw, root: str) -> Item | None:
    """The message decoded for the store; None for the topics the collector does not store
    (the commands it sent itself). Raises :class:`~edgewatch.contracts.codec.Rejected`."""
    parsed = check(raw.topic, raw.payload, root, raw.content_type)
    if parsed is None:
        return None
    return Item(parsed.leaf, parsed.fleet, parsed.device, parsed.message, raw.received,
                raw.topic, raw.payload, raw.retained, parsed.canonical)


def store_batch(store: Store,
                items: Sequence[Item]) -> tuple[list[Item], list[bool], list[Quarantined]]:
    """Store ``items`` in one transaction: (the items stored, whether each was new, the ones
    the store refused, kept in quarantine in the same transaction). A store that fails as
    a whole raises (nothing was committed)."""
    left = list(items)
    kept: list[Quarantined] = []
    while left or kept:
        try:
            return left, store.ingest_many(left, kept), kept
        except RejectedPayload as exc:  # a poison item: quarantine it, store the rest
            bad = left.pop(exc.index)
            kept.append(Quarantined(bad.received, bad.topic, "store", exc.detail, bad.raw))
    return [], [], []


_FOLLOWED = (Alert, Status, CommandResult)


def outcome_of(stored: list[Item], fresh: list[bool], kept: list[Quarantined],
               refused: list[Refusal] | None = None) -> Outcome:
    """The :class:`Outcome` of a committed batch (:func:`store_batch`'s result)."""
    return Outcome([item.kind for item, new in zip(stored, fresh) if new],
                   sum(1 for new in fresh if not new),
                   [*(refused or ()), *(Refusal("store", q.topic, q.detail) for q in kept)],
                   [(item, new) for item, new in zip(stored, fresh)
                    if isinstance(item.message, _FOLLOWED)])


class _Worker:
    """The second process's state: its store and the topic root."""

    store: Store | None = None
    root = ""


def _start_worker(url: str, root: str, level: int) -> None:
    """The second process's set-up: logs like the collector's, leaves stopping to it (and
    ends with it, even killed), opens the store, sets the garbage collector for ingest
    (``gc_settings``)."""
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s[ingest]: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), name="ingest-parent",
                         daemon=True).start()
    _Worker.store = open_store(url)
    _Worker.root = root
    gc_settings.for_ingest()


def _end_with(parent: multiprocessing.process.BaseProcess) -> None:
    """Exit when the collector's process ends, however it ends (SIGKILL too): its pipe to
    this process would otherwise never close. A batch cut short was not committed (the
    database rolls it back) or is stored again, idempotently, after the restart."""
    parent.join()
    os._exit(0)


def _ingest(batch: list[Raw]) -> Outcome:
    """Runs in the second process: decode and store one batch."""
    assert _Worker.store is not None
    items: list[Item] = []
    refused: list[Refusal] = []
    for raw in batch:
        try:
            item = decode_raw(raw, _Worker.root)
        except Rejected as exc:
            refused.append(Refusal(exc.reason, raw.topic, exc.detail))
            continue
        except Exception as exc:  # a bug: counted and logged by the collector's process
            log.debug("ingest failure", exc_info=True)
            refused.append(Refusal("unexpected", raw.topic, type(exc).__name__))
            continue
        if item is not None:
            items.append(item)
    return outcome_of(*store_batch(_Worker.store, items), refused)


class WorkerDied(Exception):
    """The second process ended while it held a batch (the batch is not stored)."""


class Sent(NamedTuple):
    """A batch handed to the second process, its outcome to come."""

    batch: list[Raw]
    future: Future[Outcome]
    pool: ProcessPoolExecutor


class IngestProcess:
    """The second process, started on first use and again after it died. Batches are
    decoded and stored one after the other, in the order they were sent."""

    def __init__(self, url: str, root: str) -> None:
        self.url, self.root = url, root
        self.started = 0
        """How many processes were started (more than one: one died)."""
        self._pool: ProcessPoolExecutor | None = None

    def send(self, batch: list[Raw]) -> Sent:
        """Hand ``batch`` over (never raises); :meth:`outcome` waits for what became of
        it."""
        if self._pool is None:
            self.started += 1
            self._pool = ProcessPoolExecutor(
                1, multiprocessing.get_context("spawn"), initializer=_start_worker,
                initargs=(self.url, self.root, logging.getLogger().getEffectiveLevel()))
        pool = self._pool
        try:
            future = pool.submit(_ingest, batch)
        except BrokenProcessPool as exc:  # died since the last batch: outcome() says so
            future = Future()
            future.set_exception(exc)
        return Sent(batch, future, pool)

    def outcome(self, sent: Sent) -> Outcome:
        """What the second process did with a batch. Raises what the store raised there
        (its own exception types, e.g. a database that is unreachable) or
        :class:`WorkerDied`."""
        try:
            return sent.future.result()
        except BrokenProcessPool as exc:
            raise self._died(sent.pool) from exc

    def ingest(self, batch: list[Raw]) -> Outcome:
        """Decode and store ``batch`` in the second process, and wait for it."""
        return self.outcome(self.send(batch))

    def _died(self, pool: ProcessPoolExecutor) -> WorkerDied:
        if self._pool is pool:  # the next batch starts another process
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        return WorkerDied("the ingest's second process ended (killed, or its start failed: "
                          "see its log lines)")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
