"""Taking a device out of the fleet: ``edgewatch fleet decommission DEVICE [--purge]``.

In the store (one transaction, :mod:`edgewatch.collector.store.retention`): the device
leaves ``devices`` -- so ``fleet status`` no longer lists it and ``/metrics`` no longer
exports it (``edgewatch_device_online`` disappears: EdgewatchDeviceOffline stops firing) --
its active alerts are closed (``alerts list`` no longer shows them) and it is recorded as
decommissioned. ``--purge`` also deletes its stored messages, covered seqs and reference
profiles; without it, its history stays readable (``fleet device``, the fleet views).

On the broker: the device's retained ``status`` (its birth or last will) and ``reference``
are cleared by publishing empty retained payloads, so no collector subscribing later is
handed them. A running collector receives the two empty payloads and counts them as refused
(reason ``encoding``): expected. Should a retained message be replayed anyway (the broker was
unreachable), the store does not let it bring the device back; a live message from the
device -- it was plugged in again -- re-admits it (logged as a warning).

The store is updated first: the broker step can be run again (the command is idempotent).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from typing import Any

from edgewatch.collector.ingest import make_client
from edgewatch.collector.store import Store
from edgewatch.collector.store.retention import Decommissioned
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts.topics import Topics
from edgewatch.errors import EdgewatchError

RETAINED_LEAVES = ("status", "reference")
"""What a device leaves retained on the broker."""


class BrokerError(EdgewatchError):
    """The broker could not be reached or did not acknowledge the clearing in time."""


def retained_topics(root: str, fleet: str, device: str) -> list[str]:
    """The topics a device's retained messages live on."""
    topics = Topics(root, fleet, device)
    return [topics.for_kind(leaf) for leaf in RETAINED_LEAVES]


def clear_retained(cfg: CollectorMqttConfig, fleet: str, device: str,
                   timeout_s: float = 10.0) -> list[str]:
    """Publish empty retained payloads (QoS 1) on the device's retained topics and wait for
    the broker's acknowledgements; the topics cleared. BrokerError when that fails."""
    topics = retained_topics(cfg.topic_root, fleet, device)
    unique = f"edgewatch-decommission-{uuid.uuid4().hex[:12]}"
    client: Any = make_client(dataclasses.replace(cfg, client_id=unique, protocol="5"))
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        connected.set()

    client.on_connect = on_connect
    where = f"{cfg.host}:{cfg.port}"
    deadline = time.monotonic() + timeout_s
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive_s, clean_start=True)
    except (OSError, ValueError) as exc:
        raise BrokerError(f"cannot reach the broker at {where}: {exc}") from exc
    client.loop_start()
    try:
        if not connected.wait(max(deadline - time.monotonic(), 0.0)) or refused:
            raise BrokerError(f"the broker at {where} did not accept the connection"
                              + (f": {refused[0]}" if refused else " in time"))
        infos = [client.publish(t, b"", qos=1, retain=True) for t in topics]
        for topic, info in zip(topics, infos):
            info.wait_for_publish(max(deadline - time.monotonic(), 0.01))
            if not info.is_published():
                raise BrokerError(f"the broker at {where} did not acknowledge clearing "
                                  f"{topic} in time")
        return topics
    finally:
        client.disconnect()
        client.loop_stop()


def decommission(store: Store, mqtt_cfg: CollectorMqttConfig, device: str, now: float,
                 purge: bool = False, timeout_s: float = 10.0) -> tuple[Decommissioned,
                                                                         list[str]]:
    """Decommission ``device``: the store first, then the broker (see the module). Returns
    what the store did and the topics cleared; StoreError for a device the store never
    heard of, BrokerError when the broker step fails (the store step is done: run the
    command again)."""
    done = store.decommission(device, now, purge)
    try:
        cleared = clear_retained(mqtt_cfg, done.fleet, device, timeout_s)
    except BrokerError as exc:
        raise BrokerError(f"device {device!r} was removed from the store, but its retained "
                          f"messages are still on the broker ({exc}): run the command "
                          "again once the broker is reachable") from exc
    return done, cleared


def report(done: Decommissioned, cleared: list[str], purge: bool) -> str:
    """The command's one-paragraph answer."""
    parts = [f"device {done.device!r} (fleet {done.fleet!r}) decommissioned"
             + ("" if done.was_known else " (it already was)")]
    parts.append(f"{done.alerts_closed} active alert(s) closed")
    if purge:
        parts.append(f"{done.messages_deleted} stored message(s) deleted")
    parts.append("retained " + ", ".join(cleared) + " cleared on the broker")
    return "; ".join(parts)
