"""The interface every database backend implements: one connection, SQL written with ``?``
placeholders, and how the backend's errors are told apart (transient, a refused value)."""

from __future__ import annotations

import abc
import urllib.parse
from collections.abc import Sequence
from typing import Any

Row = tuple[Any, ...]


class _Driver(abc.ABC):
    """One database connection; SQL is written with ``?`` placeholders."""

    errors: tuple[type[Exception], ...]
    where: str
    ddl: tuple[str, ...]

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement and return its rows (none for statements without)."""

    @abc.abstractmethod
    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per parameter row."""

    @abc.abstractmethod
    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run an ``INSERT ... ON CONFLICT DO NOTHING`` per row: was each row inserted?"""

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
