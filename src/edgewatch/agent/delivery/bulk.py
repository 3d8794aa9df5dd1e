"""Bulk transfers (evidence chunks) through the publisher, at the lowest priority.

One is taken only while the outbox has nothing unpublished and nothing in flight, at most
:data:`BULK_IN_FLIGHT` at a time, so a summary or alert never waits for more than the chunks
already in flight. They are not durable here (their source is: the evidence store); a new
connection drops what was queued (``Bulk.reset``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

BULK_IN_FLIGHT = 2
"""Bulk messages (evidence chunks) published and not yet acknowledged at most."""


class Bulk(Protocol):
    """A low-priority source of messages for the ``evidence`` topic
    (:class:`edgewatch.agent.evidence.transfer.EvidenceSender`)."""

    def next(self) -> Any: ...
    def acked(self, chunk: Any, ok: bool) -> None: ...
    def reset(self) -> int: ...


class BulkInFlight:
    """The bulk messages published on the current connection and not yet acknowledged (by
    paho mid). The publisher decides when the outbox is idle; this decides how many go."""

    def __init__(self) -> None:
        self._chunks: dict[int, Any] = {}  # paho mid -> chunk

    def __len__(self) -> int:
        return len(self._chunks)

    def reset(self, source: Bulk | None) -> None:
        """A new connection: nothing is in flight, and ``source`` drops what it queued."""
        self._chunks.clear()
        if source is not None:
            source.reset()

    def publish(self, client: mqtt.Client, source: Bulk, topic: str,
                encode: Callable[[Any], bytes], properties: Any) -> None:
        """Publish the next message of ``source`` on ``topic`` (QoS 1) unless
        :data:`BULK_IN_FLIGHT` already wait for their PUBACK; one paho refuses goes back to
        the source as not acknowledged."""
        if len(self._chunks) >= BULK_IN_FLIGHT:
            return
        chunk = source.next()
        if chunk is None:
            return
        info = client.publish(topic, encode(chunk), qos=1, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            source.acked(chunk, False)
            return
        self._chunks[info.mid] = chunk

    def acked(self, mid: int, reason: ReasonCode, source: Bulk | None) -> bool:
        """The PUBACK of ``mid``: True when it was a bulk message (``source`` learns whether
        it arrived; "no matching subscribers" counts as arrived), else False."""
        chunk = self._chunks.pop(mid, None)
        if chunk is None or source is None:
            return False
        source.acked(chunk, not reason.is_failure or reason.value == 0x10)
        return True
