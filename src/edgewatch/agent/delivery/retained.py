"""The retained messages a device keeps on the broker besides its birth: its reference
profile and the latest message of other retained topics (the model update's status).

Other threads hand them over (``set_reference``, ``set``); only the publisher's thread
publishes them (paho is driven by that thread alone): everything on each connection
(``on_connect``), and what changed since (``due``) while connected.

The reference profile (tens of KB) goes out at the first connection of a boot and again at
each switch of the default reference, not at every reconnection: once the broker
acknowledged it (``acknowledged``), a new connection leaves it out. The other topics go out
on every connection (the broker keeps the latest either way).
"""

from __future__ import annotations

import threading

__all__ = ["Retained", "RetainedMessages"]

Retained = tuple[str, bytes, bool]
"""A message to publish retained: topic, payload, whether it is the reference profile."""


class RetainedMessages:
    """See the module. Thread-safe."""

    def __init__(self, reference_topic: str, reference: bytes | None = None) -> None:
        self.reference_topic = reference_topic
        self.reference = reference
        """The reference profile's payload (None: the device publishes none)."""
        self.reference_sent = threading.Event()
        """Set when the broker acknowledged the current reference."""
        self._mid: int | None = None
        """The MQTT message id the reference was last published with (the publisher's
        thread only)."""
        self._reference_due = False
        self._latest: dict[str, bytes] = {}
        """Topic -> the latest payload set for it."""
        self._due: set[str] = set()
        """Topics set since the connection began."""
        self._lock = threading.Lock()

    def set(self, topic: str, payload: bytes) -> None:
        """The latest payload of a retained topic (any thread)."""
        with self._lock:
            self._latest[topic] = payload
            self._due.add(topic)

    def set_reference(self, payload: bytes) -> None:
        """A new reference profile (a switch: any thread)."""
        with self._lock:
            self.reference = payload
            self.reference_sent.clear()
            self._reference_due = True

    def on_connect(self) -> list[Retained]:
        """Everything to publish on a new connection: the reference unless the broker has
        it already, then every retained topic."""
        self._mid = None  # a new connection: the last one's ids mean nothing
        with self._lock:
            self._reference_due = False
            self._due.clear()
            out = [(self.reference_topic, self.reference, True)] \
                if self.reference is not None and not self.reference_sent.is_set() else []
            return out + [(topic, payload, False) for topic, payload in self._latest.items()]

    def due(self) -> list[Retained]:
        """What changed since the connection began (or the last call), to publish now."""
        if not (self._reference_due or self._due):
            return []
        with self._lock:
            out = [(self.reference_topic, self.reference, True)] \
                if self._reference_due and self.reference is not None else []
            if out:  # an acknowledgement of the one before does not count for this one
                self.reference_sent.clear()
            self._reference_due = False
            out += [(topic, self._latest[topic], False) for topic in self._due]
            self._due.clear()
            return out

    def published(self, mid: int) -> None:
        """The reference went out with message id ``mid``."""
        self._mid = mid

    def acknowledged(self, mid: int, ok: bool = True) -> bool:
        """The broker acknowledged message ``mid`` (``ok``: and took it); whether it was
        the reference last published."""
        if mid != self._mid or self._mid is None:
            return False
        self._mid = None
        if ok:
            self.reference_sent.set()
        return True
