"""The bytes an outbox row goes out as: its payload in ``mqtt.encoding``, flagged
``historical`` when it comes from a backlog, and the PUBLISH properties it carries.

The outbox keeps JSON rows. With ``backlog_encoder`` it also stores each row's payload as a
backlog sends it (the ``wire`` column), so a drain only reads and sends bytes; such rows
are handed out without their JSON body, and a row sent live (not historical) is decoded
from its wire payload instead. JSON rows need none of this: they go out as stored, the
``historical`` flag spliced in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgewatch.config.delivery import MqttConfig
from edgewatch.contracts import codec


class Row(Protocol):
    seq: int
    kind: str
    created: float
    body: str
    wire: bytes | None


class PackedProperties(Properties):  # type: ignore[misc]
    """PUBLISH properties packed once: paho packs a message's properties again on every
    publish, which costs more than the rest of the packet."""

    def __init__(self, content_type: str) -> None:
        super().__init__(PacketTypes.PUBLISH)
        self.ContentType = content_type
        object.__setattr__(self, "packed", super().pack())

    def pack(self) -> bytes:
        packed: bytes = object.__getattribute__(self, "packed")
        return packed


def backlog_encoder(cfg: MqttConfig) -> Callable[[dict[str, Any]], bytes] | None:
    """How the outbox stores a row's payload as a backlog sends it (flagged ``historical``,
    in ``mqtt.encoding``); None for JSON, which goes out as stored anyway."""
    encoding = cfg.encoding
    if codec.content_type(encoding) == codec.JSON:
        return None
    return lambda payload: codec.encode({**payload, "historical": True}, encoding)


class RowEncoder:
    """Outbox rows as payloads in one encoding."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.content_type = codec.content_type(encoding)

    def payload(self, row: Row, historical: bool) -> bytes:
        """A row's payload: from a backlog, its wire payload as stored; else its body
        encoded (or, for a row handed out without its body, the wire payload decoded).
        Raises msgspec errors, TypeError or codec.Rejected for a row that does not encode."""
        wire = row.wire
        if wire is None or row.body:
            return wire if historical and wire is not None and self.sendable(wire) \
                else self.from_body(row.body, historical)
        if historical and self.sendable(wire):
            return wire
        message: dict[str, Any] = codec.decode_as(dict[str, Any], wire)
        if not historical:
            message.pop("historical", None)
        return codec.encode(message, self.encoding)

    def from_body(self, body: str, historical: bool) -> bytes:
        """An outbox row (a JSON object) in the configured encoding. JSON rows go out as
        stored, without a decode and re-encode (the outbox wrote them)."""
        if self.content_type == codec.JSON:
            return ('{"historical":true,' + body[1:] if historical else body).encode()
        message: dict[str, Any] = msgspec.json.decode(body)
        if historical:
            message["historical"] = True
        return codec.encode(message, self.encoding)

    def sendable(self, wire: bytes) -> bool:
        """Whether a stored wire payload is in this encoding."""
        try:  # two bytes say which (codec.sniff)
            return codec.sniff(wire[:2]) == self.content_type
        except codec.Rejected:
            return False
