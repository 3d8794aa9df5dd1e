"""The SQLite backend: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
``sqlite:///:memory:``.

WAL, ``synchronous=NORMAL`` (a power cut may undo the last committed transactions but never
corrupts the file; a process crash loses nothing), ``busy_timeout``. Several processes may
share the file; writers take turns (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from edgewatch.collector.store.drivers import Row, _Driver
from edgewatch.collector.store.errors import StoreError
from edgewatch.collector.store.schema import ddl

_SQLITE_BUSY_TIMEOUT_S = 30.0


class _SQLiteDriver(_Driver):
    max_params = 999 if sqlite3.sqlite_version_info < (3, 32) else 32766
    returning = sqlite3.sqlite_version_info >= (3, 35)

    def __init__(self, path: str) -> None:
        self.errors = (sqlite3.Error,)
        self.where = f"sqlite {path}"
        self.ddl = ddl(id_type="INTEGER", blob_type="BLOB")
        self.conn = sqlite3.connect(path, timeout=_SQLITE_BUSY_TIMEOUT_S,
                                    isolation_level=None, check_same_thread=False)
        self.conn.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
        self._wal(time.monotonic() + _SQLITE_BUSY_TIMEOUT_S)
        self.conn.execute("PRAGMA synchronous = NORMAL")

    def _wal(self, deadline: float) -> None:
        """Switch to WAL (persistent in the file). Switching can fail with "locked" at
        once, without the busy handler, while another process opens the new file too."""
        while True:
            try:
                mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() in ("wal", "memory"):
                    return
                self.conn.execute("PRAGMA journal_mode = WAL").fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.executemany(sql, rows)

    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        execute = self.conn.execute
        return [execute(sql, row).rowcount == 1 for row in rows]

    def begin(self, write: bool) -> None:
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def refused(self, exc: Exception) -> bool:
        return super().refused(exc) or isinstance(exc, (sqlite3.DataError,
                                                        sqlite3.IntegrityError))

    def create_schema(self) -> None:
        self.begin(write=True)
        try:
            for statement in self.ddl:
                self.conn.execute(statement)
            self.commit()
        except BaseException:
            self.rollback()
            raise


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite://"):]
    if not rest.startswith("/") or len(rest) < 2:
        raise StoreError(f"bad SQLite URL {url!r}: use sqlite:///relative/path.db, "
                         "sqlite:////absolute/path.db or sqlite:///:memory:")
    return rest[1:]
