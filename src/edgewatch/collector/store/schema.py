"""The store's tables and indexes, one schema for both backends.

``devices``: one row per device (status, manifest, last message time).
``messages``: every stored message, its payload as JSON text; ``alert_id`` and
``alert_state`` are copied out of alert payloads so active alerts are counted in SQL.
``covered``: the original seqs listed in ``merged_seqs`` of compacted summaries, so gap
detection counts them as present. Gaps are counted over the union of message seqs and
covered seqs, per device across boots (seqs are per device).
``references``: the reference profiles devices publish (retained), by (device, reference
id): the bins and histograms of the windows stored.
``quarantine``: messages the store refused (a value the database cannot take...), kept as
received (topic, bytes, reason, detail) for an operator; never read by ingest.
``decommissioned``: devices an operator removed from the fleet, and when
(:mod:`edgewatch.collector.store.retention`); a live message re-admits the device.
``commands``: operator commands to devices that were offline, queued until the device's
next birth (:mod:`edgewatch.collector.store.commands`).

Every statement is idempotent (``CREATE ... IF NOT EXISTS``); each driver runs them in one
transaction (``create_schema``), on PostgreSQL under an advisory lock.
"""

from __future__ import annotations

_DDL = (
    """CREATE TABLE IF NOT EXISTS devices (
        device TEXT PRIMARY KEY,
        fleet TEXT NOT NULL,
        online BOOLEAN NOT NULL DEFAULT FALSE,
        status_time DOUBLE PRECISION,
        last_seen DOUBLE PRECISION,
        boot_id TEXT,
        manifest TEXT)""",
    """CREATE TABLE IF NOT EXISTS messages (
        device TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        fleet TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL,
        window_start DOUBLE PRECISION,
        window_end DOUBLE PRECISION,
        historical BOOLEAN NOT NULL,
        alert_id TEXT,
        alert_state TEXT,
        payload TEXT NOT NULL,
        PRIMARY KEY (device, boot_id, seq))""",
    "CREATE INDEX IF NOT EXISTS messages_window ON messages (device, kind, window_end)",
    """CREATE INDEX IF NOT EXISTS messages_alert ON messages (device, alert_id, seq)
        WHERE kind = 'alert'""",
    """CREATE TABLE IF NOT EXISTS covered (
        device TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS "references" (
        device TEXT NOT NULL,
        reference_id TEXT NOT NULL,
        fleet TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        model_sha256 TEXT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (device, reference_id))""",
    """CREATE TABLE IF NOT EXISTS decommissioned (
        device TEXT PRIMARY KEY,
        fleet TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS commands (
        id TEXT PRIMARY KEY,
        device TEXT NOT NULL,
        fleet TEXT NOT NULL,
        name TEXT NOT NULL,
        args TEXT NOT NULL,
        token TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        result TEXT)""",
    "CREATE INDEX IF NOT EXISTS commands_device ON commands (device, state, created)",
)
_QUARANTINE_DDL = (
    """CREATE TABLE IF NOT EXISTS quarantine (
        id {id} PRIMARY KEY,
        received DOUBLE PRECISION NOT NULL,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        payload {blob} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received)",
)
"""The dead-letter table; ``{id}`` and ``{blob}`` are the backend's column types."""


def ddl(id_type: str, blob_type: str) -> tuple[str, ...]:
    """Every statement of the schema, with the backend's types for the quarantine's
    ``id`` column and its payload bytes."""
    return (*_DDL, *(d.format(id=id_type, blob=blob_type) for d in _QUARANTINE_DDL))
