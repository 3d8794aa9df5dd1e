"""Checking what arrives from devices before it is stored; a bad payload is counted, never
fatal."""

from __future__ import annotations

import json
from typing import Any

from edgewatch import alerts, commands, status, summary
from edgewatch.errors import EdgewatchError
from edgewatch.contracts.topics import parse

SCHEMAS = {
    "summary": summary.SCHEMA,
    "alert": alerts.SCHEMA,
    "status": status.SCHEMA,
    "cmd_result": commands.RESULT_SCHEMA,
}
MAX_PAYLOAD = 4 * 1024 * 1024


class BadPayload(EdgewatchError):
    """A message that cannot be stored; ``reason`` is a short label for the metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def check(topic: str, raw: bytes, root: str) -> tuple[str, str, str, dict[str, Any]] | None:
    """(kind, fleet, device, payload) of a device message; None for topics the collector
    does not store (commands it sent itself). Raises BadPayload."""
    parts = parse(topic, root)
    if parts is None:
        raise BadPayload("topic", f"unexpected topic {topic[:200]!r}")
    fleet, device, leaf = parts
    if leaf.startswith("cmd/"):
        return None
    if leaf not in SCHEMAS:
        raise BadPayload("topic", f"unknown leaf {leaf[:50]!r}")
    payload = _decode(raw)
    schema = payload.get("schema")
    if schema != SCHEMAS[leaf]:
        raise BadPayload("schema", f"{leaf} with schema {str(schema)[:60]!r}, expected "
                                   f"{SCHEMAS[leaf]}")
    if payload.get("device") != device:
        raise BadPayload("device", f"payload device {str(payload.get('device'))[:60]!r} "
                                   f"published under {device!r}")
    if leaf != "status":
        _transport(payload)
    return leaf, fleet, device, payload


def _decode(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_PAYLOAD:
        raise BadPayload("size", f"{len(raw)} bytes")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload("json", str(exc)[:120]) from exc
    if not isinstance(payload, dict):
        raise BadPayload("json", "not a JSON object")
    return payload


def _transport(payload: dict[str, Any]) -> None:
    boot_id, seq = payload.get("boot_id"), payload.get("seq")
    if not isinstance(boot_id, str) or not boot_id:
        raise BadPayload("transport", "missing boot_id")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise BadPayload("transport", f"bad seq {str(seq)[:30]!r}")
