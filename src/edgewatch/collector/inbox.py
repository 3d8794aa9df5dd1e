"""The ingest's inbox: messages received from the broker and not yet stored."""

from __future__ import annotations

import collections
import threading
import time

from edgewatch.collector.ingest_batch import Raw
from edgewatch.collector.store import Item

__all__ = ["Entry", "Inbox"]

Entry = tuple[int, int, Item | Raw | None]
"""A received message: (mid, qos, what to store). Decoded on the network thread (an Item)
or, with ``store.worker_process``, as received (a Raw, decoded by the second process);
None: nothing to store, only the acknowledgement."""


class Inbox:
    """Messages received and not yet stored: the MQTT thread puts one at a time (blocking
    while ``maxsize`` wait: paho stops reading, the broker keeps the rest), the store thread
    takes them in batches. The store thread is woken when a batch starts and when it is
    full, not for every message (each wake-up is a trip between the threads)."""

    def __init__(self, maxsize: int, batch: int) -> None:
        self.maxsize, self.batch = maxsize, batch
        self._items: collections.deque[Entry] = collections.deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, entry: Entry) -> None:
        with self._cond:
            while len(self._items) >= self.maxsize:
                self._cond.wait()
            self._items.append(entry)
            if len(self._items) in (1, self.batch):
                self._cond.notify_all()

    def take(self, wait_s: float, fill_s: float) -> list[Entry]:
        """Up to ``batch`` entries: waits up to ``wait_s`` for the first, then up to
        ``fill_s`` for the batch to fill; [] when nothing came."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: self._items, wait_s):
                return []
            deadline = time.monotonic() + fill_s
            while len(self._items) < self.batch and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            items = self._items
            batch = [items.popleft() for _ in range(min(len(items), self.batch))]
            self._cond.notify_all()  # room for a put that waits
            return batch
