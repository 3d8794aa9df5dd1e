"""``edgewatch model status``: the model update lifecycle of each device, as its latest
retained ``edgewatch.update_status/1`` message on the broker says.

Devices publish every state change retained on ``<root>/<fleet>/<device>/update_status``, and
republish the latest on every connection; the broker keeps one per device. The collector's
store does not keep them: the broker's retained store is the record (a device's own
``state.json`` is the source of truth, and it republishes it at start). Reading them needs
the collector's MQTT identity (it reads everything under the root).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import uuid
from typing import Any

import msgspec

from edgewatch.collector.mqtt_client import make_client
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts.codec import Rejected, decode
from edgewatch.contracts.topics import UPDATE_STATUS
from edgewatch.contracts.update_status import SCHEMA, UpdateStatus
from edgewatch.errors import EdgewatchError

QUIET_S = 0.5
"""Retained messages arrive right after the subscription: read until none came for this
long."""


class StatusError(EdgewatchError):
    """The broker could not be reached or refused the subscription."""


def read_statuses(cfg: CollectorMqttConfig, device: str | None = None,
                  timeout_s: float = 10.0) -> list[UpdateStatus]:
    """The retained update statuses (of ``device``, or every device), by device."""
    found: dict[str, UpdateStatus] = {}
    lock = threading.Lock()
    subscribed = threading.Event()
    last = [time.monotonic()]
    errors: list[str] = []
    topic = f"{cfg.topic_root}/+/{device or '+'}/{UPDATE_STATUS}"

    def on_connect(client: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            errors.append(f"the broker refused the connection: {reason}")
            subscribed.set()
            return
        client.subscribe(topic, qos=1)

    def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: Any, _p: Any = None) -> None:
        if reasons and reasons[0].is_failure:
            errors.append(f"the broker refused the subscription to {topic}: {reasons[0]}")
        last[0] = time.monotonic()
        subscribed.set()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        ctype = getattr(msg.properties, "ContentType", None) or None
        try:
            status = decode(UPDATE_STATUS, bytes(msg.payload), ctype)
        except Rejected:
            return
        if isinstance(status, UpdateStatus):
            with lock:
                found[status.device] = status
                last[0] = time.monotonic()

    client = make_client(dataclasses.replace(
        cfg, client_id=f"edgewatch-operator-{uuid.uuid4().hex[:12]}", protocol="5"))
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    where = f"{cfg.host}:{cfg.port}"
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive_s, clean_start=True)
    except (OSError, ValueError) as exc:
        raise StatusError(f"cannot reach the broker at {where}: {exc}") from exc
    client.loop_start()
    try:
        if not subscribed.wait(timeout_s):
            raise StatusError(f"the broker at {where} did not answer in {timeout_s:g} s")
        if errors:
            raise StatusError(errors[0])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() - last[0] < QUIET_S and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    with lock:
        return [found[d] for d in sorted(found)]


def status_row(s: UpdateStatus) -> dict[str, Any]:
    """One status as JSON (``--json``): the message with its schema."""
    row: dict[str, Any] = {"schema": SCHEMA}
    row.update(msgspec.to_builtins(s))
    return row


def format_statuses(rows: list[UpdateStatus]) -> str:
    """A table, then each rejected or rolled back update's reason and gates."""
    if not rows:
        return "no model update statuses (no device has reported an update)"
    head = ["device", "update", "state", "since (UTC)", "model", "running", "shadow", "soak"]
    cells = [[s.device, s.update_id, s.state,
              dt.datetime.fromtimestamp(s.time, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
              s.model_sha256[:12], s.running_sha256[:12], str(s.shadow_frames),
              str(s.soak_frames)] for s in rows]
    widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *cells]]
    for s in rows:
        if s.reason:
            lines.append(f"{s.device}: {s.state}: {s.reason}")
        for g in s.gates:
            mark = "ok  " if g.passed else "FAIL"
            lines.append(f"  {mark} {g.name} {g.value:.3g} (limit {g.limit:g})")
    return "\n".join(lines)
