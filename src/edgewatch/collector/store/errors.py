"""The store's errors: what it refuses, what it cannot read, and how a refusal is worded."""

from __future__ import annotations

from edgewatch.errors import EdgewatchError


class StoreError(EdgewatchError):
    """The collector store cannot be opened, refused a payload, or the database failed."""


class RejectedPayload(StoreError):
    """An item the store will never accept (retrying is pointless); nothing was written.

    ``index`` is the item's position in the ``ingest_many`` batch (0 for ``ingest``): drop
    it (quarantine it) and ingest the rest again. ``detail`` says why, in a line of at most
    a few hundred characters that a database stores.
    """

    def __init__(self, index: int, detail: str) -> None:
        detail = _clean(detail, 500)
        super().__init__(f"item {index}: {detail}")
        self.index = index
        self.detail = detail
        self.reason = detail
        """The same as ``detail`` (the older name)."""


class _Refused(StoreError):
    """The database (or its driver) refused a value of the batch: one of its items is
    poison, not the database unreachable."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _DryRun(Exception):
    """Raised to roll a trial write back (``writes._culprit``)."""


class UnreadableRow(EdgewatchError):
    """A stored payload that does not decode into its contract (a row written by hand, by a
    broken writer, or damaged). Not a :class:`StoreError`: the store itself works, and the
    readers skip the row."""


def _first_line(exc: BaseException) -> str:
    """The error's class and first line: PostgreSQL's DETAIL lines may quote the row, that
    is the payload."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _clean(text: str, limit: int) -> str:
    """``text`` as a line any database stores: no NUL, no lone surrogate, at most about
    ``limit`` characters."""
    text = text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")
