"""Alert state and operator overrides in SQLite, so they survive restarts (in memory for
an offline replay, which keeps none)."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

MEMORY = ":memory:"
"""The path of a store kept in memory only (SQLite's name for it)."""
TABLES = ("alerts", "overrides", "counters")


@dataclasses.dataclass
class Alert:
    """One alert: a rule breached for one subject, until it resolves. Alerts of one incident
    group share an incident: the first is its lead, later ones its members."""

    key: str
    id: str
    rule: str
    subject: str
    metric: str
    severity: str
    state: str  # firing | acknowledged | snoozed | resolved
    since: float
    observed: float
    window_start: float
    window_end: float
    last_notified: float
    snoozed_until: float = 0.0
    clear_count: int = 0
    message: str = ""
    group: str = ""
    """The rule's incident group when it fired."""
    incident: str = ""
    """A member's lead alert id ("" for a lead: the alert that opened the incident)."""
    cleared: bool = False
    """A lead whose own condition cleared, held open while members are active."""
    evidence: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Drift alerts: the flagged features (``contracts.alert.Evidence`` as dicts)."""
    signal_back: float = 0.0
    """No-signal alerts: footage time the picture came back (0 while it is lost). The
    alert resolves with the next window judged, so that window's alerts of the same cause
    (its quality faults) join the incident instead of opening another."""


@dataclasses.dataclass
class Override:
    enabled: bool | None = None
    threshold: float | None = None
    resolve_threshold: float | None = None


class AlertStore:
    """Active alerts, breach counters and rule overrides in one small SQLite file.

    ``":memory:"`` (an offline replay: a clean state, none kept) holds the same JSON
    bodies in dictionaries instead, without loading SQLite at all: 1 to 2.5 MiB less of
    the process's peak resident memory (the library, its module and page cache)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, str]] | None = None
        if str(path) == MEMORY:
            self._memory = {table: {} for table in TABLES}
            return
        import sqlite3

        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db: sqlite3.Connection = conn
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        for table in TABLES:
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, "
                            "body TEXT NOT NULL)")

    def _load(self, table: str) -> dict[str, Any]:
        with self._lock:
            if self._memory is not None:
                rows = list(self._memory[table].items())
            else:
                rows = self.db.execute(f"SELECT key, body FROM {table}").fetchall()
        return {k: json.loads(b) for k, b in rows}

    def _save(self, table: str, key: str, body: Any | None) -> None:
        with self._lock:  # autocommit: each statement is its own durable transaction
            if self._memory is not None:
                if body is None:
                    self._memory[table].pop(key, None)
                else:
                    self._memory[table][key] = json.dumps(body)
            elif body is None:
                self.db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))
            else:
                self.db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",
                                     (key, json.dumps(body)))

    def alerts(self) -> dict[str, Alert]:
        return {k: Alert(**v) for k, v in self._load("alerts").items()}

    def save_alert(self, alert: Alert) -> None:
        self._save("alerts", alert.key, dataclasses.asdict(alert))

    def drop_alert(self, key: str) -> None:
        self._save("alerts", key, None)

    def overrides(self) -> dict[str, Override]:
        return {k: Override(**v) for k, v in self._load("overrides").items()}

    def save_override(self, rule: str, override: Override) -> None:
        self._save("overrides", rule, dataclasses.asdict(override))

    def counters(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._load("counters").items()}

    def save_counter(self, key: str, value: int) -> None:
        self._save("counters", key, value if value else None)

    def close(self) -> None:
        if self._memory is None:
            self.db.close()
