"""Payloads for people: what ``edgewatch decode`` prints.

A payload is MessagePack+zlib or JSON (recognised from its first bytes), one message per
file or one per line of a JSON-lines file (replay output, a capture). Each is decoded through
the contracts, with every bound checked, into the type its topic leaf names; without a leaf
the payload's own ``schema`` field chooses. Replay alert lines (an alert with ``"type":
"alert"`` in front) are read as alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from edgewatch.contracts import Alert, CommandResult, Reference, Rejected, Status, codec
from edgewatch.contracts.alert import SCHEMA as ALERT_SCHEMA
from edgewatch.contracts.command import RESULT_SCHEMA
from edgewatch.contracts.evidence import CHUNK_SCHEMA, EvidenceChunk
from edgewatch.contracts.reference import SCHEMA as REFERENCE_SCHEMA
from edgewatch.contracts.status import SCHEMA as STATUS_SCHEMA
from edgewatch.contracts.summary import SCHEMA as SUMMARY_SCHEMA
from edgewatch.contracts.summary import Summary
from edgewatch.contracts.summary_v1 import SCHEMA_V1 as SUMMARY_SCHEMA_V1
from edgewatch.contracts.summary_v1 import SummaryV1
from edgewatch.contracts.update_status import SCHEMA as UPDATE_STATUS_SCHEMA
from edgewatch.contracts.update_status import UpdateStatus

LEAVES = tuple(codec.DEVICE_MESSAGES)
"""The leaves ``--leaf`` accepts: summary, alert, status, cmd_result, reference, evidence,
update_status."""
MESSAGES = (Summary, SummaryV1, Alert, Status, CommandResult, Reference, EvidenceChunk,
            UpdateStatus)
LEAF_OF_SCHEMA = {
    SUMMARY_SCHEMA: "summary", SUMMARY_SCHEMA_V1: "summary", ALERT_SCHEMA: "alert",
    STATUS_SCHEMA: "status", RESULT_SCHEMA: "cmd_result", REFERENCE_SCHEMA: "reference",
    CHUNK_SCHEMA: "evidence", UPDATE_STATUS_SCHEMA: "update_status",
}


class _Head(msgspec.Struct):
    """The fields that say what a payload is (every other field is skipped)."""

    schema: str = ""
    type: str = ""


def decode_payload(raw: bytes, leaf: str | None = None) -> msgspec.Struct:
    """One payload decoded into its contract type; raises Rejected with the reason."""
    if not raw.strip():
        raise Rejected("encoding", "empty payload")
    if leaf is not None and leaf not in codec.DEVICE_MESSAGES:
        raise Rejected("topic", f"unknown leaf {leaf[:50]!r} (known: {', '.join(LEAVES)})")
    head = codec.decode_as(_Head, raw)
    if leaf is None:
        leaf = LEAF_OF_SCHEMA.get(head.schema)
        if leaf is None:
            raise Rejected("schema", f"unknown schema {head.schema[:60]!r}; name the message "
                                     f"type with --leaf ({', '.join(LEAVES)})")
    kind = codec.DEVICE_MESSAGES[leaf]
    if leaf == "alert" and head.type == "alert":  # a replay line
        fields: dict[str, Any] = codec.decode_as(dict[str, Any], raw)
        del fields["type"]
        try:
            message = msgspec.convert(fields, kind)
        except msgspec.ValidationError as exc:
            raise Rejected("invalid", str(exc)[:200]) from None
    else:
        message = codec.decode_as(kind, raw)
    if not isinstance(message, MESSAGES):  # a schema the codec knows but never sends
        raise Rejected("schema", f"schema {head.schema[:60]!r} is not a {leaf!r} schema")
    return message


def decode_all(raw: bytes, leaf: str | None = None
               ) -> Iterator[tuple[int | None, msgspec.Struct | Rejected]]:
    """Every message in ``raw``: (line number or None for a whole payload, the message or
    why it was refused). JSON that is not one document is read as JSON lines."""
    try:
        json = codec.sniff(raw) == codec.JSON
    except Rejected as exc:
        yield None, exc
        return
    lines = [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    if not json or len(lines) <= 1:
        yield None, _attempt(raw, leaf)
        return
    whole = _attempt(raw, leaf)
    first = _attempt(lines[0][1], leaf)
    if not (isinstance(whole, Rejected) and whole.reason == "encoding") or (
            isinstance(first, Rejected) and first.reason == "encoding"):
        yield None, whole  # one document over several lines (a reference profile)
        return
    yield lines[0][0], first
    for number, line in lines[1:]:
        yield number, _attempt(line, leaf)


def _attempt(raw: bytes, leaf: str | None) -> msgspec.Struct | Rejected:
    try:
        return decode_payload(raw, leaf)
    except Rejected as exc:
        return exc
