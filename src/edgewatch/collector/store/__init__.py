"""The collector's idempotent store: SQLite or PostgreSQL, one schema and one design.

``open_store(url)`` picks the backend:

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (three slashes then the
  path, as SQLAlchemy spells it) or ``sqlite:///:memory:``. WAL, ``synchronous=NORMAL``
  (a power cut may undo the last committed transactions but never corrupts the file; a
  process crash loses nothing), ``busy_timeout``. Several processes may share the file;
  writers take turns (``BEGIN IMMEDIATE``).
- ``postgresql://user@host:port/dbname`` (or ``postgres://``): psycopg 3, autocommit off,
  one connection per ``Store``. Several collector processes may share one database.

Idempotence
    Device -> collector messages (``summary``, ``alert``, ``cmd_result``) are keyed by
    ``(device, boot_id, seq)`` and inserted with ``INSERT ... ON CONFLICT DO NOTHING``, so a
    message delivered twice (QoS 1, a re-published backlog, two collectors) is stored once
    and exactly one ``ingest`` call -- in whatever process -- reports it as new. Within a
    batch, rows are written in one global order (messages by key, then covered seqs, then
    devices by id) so that concurrent batches cannot deadlock each other; a deadlock or
    serialisation failure reported by PostgreSQL anyway is retried.

Poison
    An item whose values the database refuses (out of a column's range, a character it
    cannot store) makes ``ingest_many`` try each item alone, rolled back, and raise
    :class:`RejectedPayload` naming the first one refused: the caller keeps it in the
    ``quarantine`` table and stores the rest.

Schema
    ``devices``, ``messages``, ``covered``, ``references``, ``quarantine`` and ``commands``
    (:mod:`edgewatch.collector.store.schema`). Payloads are the canonical JSON of the
    decoded message (``msgspec.json.encode``), summaries as schema 2. Schema creation is
    idempotent (``CREATE ... IF NOT EXISTS``) and, on PostgreSQL, runs in one transaction
    under ``pg_advisory_xact_lock`` so that two processes starting at once do not race on
    the catalog.

Threads
    Every ``Store`` holds one connection and one lock taken for each whole public call.

The modules: ``records`` (what goes in and comes out), ``errors``, ``schema`` (DDL),
``drivers`` (the backend interface), ``sqlite`` and ``postgres`` (the backends), ``writes``
(items to rows, the ordered idempotent write, quarantine), ``reads`` (queries, decoding
stored payloads), ``facade`` (:class:`Store`, transactions, :func:`open_store`),
``retention`` (hourly and daily rollups, expiry, decommissioning: ``decommissioned``).
"""

from edgewatch.collector.store.commands import QueuedCommand
from edgewatch.collector.store.drivers import Row
from edgewatch.collector.store.errors import RejectedPayload, StoreError, UnreadableRow
from edgewatch.collector.store.facade import Store, open_store
from edgewatch.collector.store.reads import read_alert, read_manifest, read_summary
from edgewatch.collector.store.records import (
    ACTIVE_ALERT_STATES,
    KINDS,
    MESSAGE_KINDS,
    REFERENCE_KIND,
    STATUS_KIND,
    DeviceState,
    Item,
    Quarantined,
)

__all__ = [
    "ACTIVE_ALERT_STATES",
    "KINDS",
    "MESSAGE_KINDS",
    "REFERENCE_KIND",
    "STATUS_KIND",
    "DeviceState",
    "Item",
    "Quarantined",
    "QueuedCommand",
    "RejectedPayload",
    "Row",
    "Store",
    "StoreError",
    "UnreadableRow",
    "open_store",
    "read_alert",
    "read_manifest",
    "read_summary",
]
