"""The interface every database backend implements: one connection, SQL written with ``?``
placeholders, and how the backend's errors are told apart (transient, a refused value)."""

from __future__ import annotations

import abc
import dataclasses
import functools
import urllib.parse
from collections.abc import Sequence
from typing import Any

Row = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class KeyedInsert:
    """An ``INSERT ... ON CONFLICT DO NOTHING`` into ``table`` whose first ``key`` columns
    are the key: many rows in one statement, told apart by what it returns."""

    table: str
    columns: tuple[str, ...]
    key: int

    @functools.lru_cache(maxsize=64)  # noqa: B019 (a few constant instances)
    def sql(self, rows: int, returning: bool = True) -> str:
        """The statement for ``rows`` rows, returning the key of each row inserted."""
        one = f"({', '.join('?' * len(self.columns))})"
        tail = f" RETURNING {', '.join(self.columns[:self.key])}" if returning else ""
        return (f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES "
                f"{', '.join([one] * rows)} ON CONFLICT DO NOTHING{tail}")


class _Driver(abc.ABC):
    """One database connection; SQL is written with ``?`` placeholders."""

    errors: tuple[type[Exception], ...]
    where: str
    ddl: tuple[str, ...]
    max_params = 999
    """Parameters one statement may take (SQLite before 3.32: 999)."""
    returning = True
    """Whether ``INSERT ... RETURNING`` works (SQLite before 3.35: not)."""

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement and return its rows (none for statements without)."""

    @abc.abstractmethod
    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per parameter row."""

    @abc.abstractmethod
    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run an ``INSERT ... ON CONFLICT DO NOTHING`` per row: was each row inserted?"""

    def insert_keyed(self, insert: KeyedInsert, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """``insert_new`` in as few statements as the parameter limit allows: was each row
        inserted? Of rows with the same key, only the first can be."""
        if not rows or not self.returning:
            return self.insert_new(insert.sql(1, returning=False), rows)
        per = max(1, self.max_params // len(insert.columns))
        new: set[Row] = set()
        for i in range(0, len(rows), per):
            chunk = rows[i:i + per]
            new.update(tuple(r) for r in self.query(insert.sql(len(chunk)),
                                                    [v for row in chunk for v in row]))
        out = []
        for row in rows:
            key = tuple(row[:insert.key])
            out.append(key in new)
            new.discard(key)
        return out

    @abc.abstractmethod
    def begin(self, write: bool) -> None:
        """Open a transaction (write: take the write lock now where that matters)."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def create_schema(self) -> None:
        """Create the tables and indexes if missing, safely against concurrent creators."""

    def lock(self, key: int) -> None:
        """Take an exclusive lock until the end of the current write transaction, shared
        with other processes (PostgreSQL: ``pg_advisory_xact_lock``). SQLite needs none:
        its write transactions (``BEGIN IMMEDIATE``) already take turns."""
        return None

    def transient(self, exc: Exception) -> bool:
        """Whether a failed transaction may simply be run again."""
        return False

    def refused(self, exc: Exception) -> bool:
        """Whether a failed write failed on a value (one poison item), not on the database:
        a value the driver cannot send or the database cannot take."""
        return isinstance(exc, (ValueError, OverflowError))


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
