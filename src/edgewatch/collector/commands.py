"""Operator commands queued for offline devices, delivered by the collector.

Devices keep no persistent MQTT session, so the broker queues nothing for a device that is
away. When the operator CLI (:mod:`edgewatch.collector.operations`) finds a device offline
-- the broker answers its command's PUBLISH with "no matching subscribers" (MQTT 5 reason
16), or the device does not answer in time -- it keeps the command in the store's
``commands`` table as ``queued``. The collector (:class:`CommandRelay`, on the ingest's
store thread):

- when a device's birth (an ``online`` status, retained ones included) is stored,
  publishes the device's queued commands (same id, same token) with QoS 1 and marks them
  ``sent``; a PUBACK saying nobody is subscribed puts one back to ``queued``. The agent
  subscribes to its command topic before it publishes its birth, so a birth means the
  device listens. Instances sharing a fleet (``mqtt.shared_group``) act on live births
  only: the broker gives a live message to one instance of the group, but Mosquitto sends
  the retained ones to every instance that subscribes, which would deliver a command once
  per instance (a birth queued in an instance's session while it was away comes live);
- when a ``cmd_result`` is stored whose id is a kept command's, marks it ``answered`` with
  the result;
- once a minute, marks open commands older than ``commands.expire_s`` ``expired``.

A command may thus reach a device twice (the CLI's own publish was slow to be answered,
then the relay's). The agent answers a command id it has already carried out with its
first answer, without carrying it out again (:class:`edgewatch.agent.commands.CommandRouter`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.store import Item, QueuedCommand
from edgewatch.collector.store.commands import CommandState
from edgewatch.contracts.command import SCHEMA as CMD_SCHEMA
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.status import Status
from edgewatch.contracts.topics import Topics

log = logging.getLogger(__name__)

NO_SUBSCRIBERS = 0x10
"""MQTT 5 PUBACK reason: the broker found nobody subscribed to the topic."""
EXPIRE_EVERY_S = 60.0
_RESERVED = ("schema", "id", "token")


def command_payload(command_id: str, args: dict[str, Any], token: str) -> bytes:
    """The ``edgewatch.cmd/1`` JSON payload; ValueError/TypeError when ``args`` are not
    plain JSON."""
    body: dict[str, Any] = {"schema": CMD_SCHEMA, "id": command_id}
    body.update({k: v for k, v in args.items() if k not in _RESERVED})
    if token:
        body["token"] = token
    return json.dumps(body, allow_nan=False).encode("utf-8")


class CommandStore(Protocol):
    def commands(self, device: str | None = None, states: Sequence[str] | None = None,
                 limit: int = 100) -> list[QueuedCommand]: ...

    def command_state(self, command_id: str, state: CommandState, now: float,
                      result: dict[str, Any] | None = None) -> bool: ...

    def expire_commands(self, before: float, now: float) -> int: ...


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 0) -> Any: ...


class CommandRelay:
    """Delivers queued commands on a device's birth and records their answers."""

    def __init__(self, store: CommandStore, client: Publisher, topic_root: str,
                 expire_s: float, clock: Clock | None = None, *,
                 retained_births: bool = True) -> None:
        self.store = store
        self.retained_births = retained_births
        """Whether a retained birth delivers too (False for instances of a shared group)."""
        self.client = client
        self.topic_root = topic_root
        self.expire_s = expire_s
        self.clock = clock or SystemClock()
        self.sent = 0
        self.answered = 0
        self.expired = 0
        self._lock = threading.Lock()
        self._inflight: dict[int, str] = {}
        """paho mid -> command id, until the PUBACK."""
        self._undelivered: list[str] = []
        """Commands whose PUBACK said nobody is subscribed: back to ``queued``."""
        self._early: dict[int, int] = {}
        """PUBACK reasons that arrived before their mid was recorded."""
        self._next_expiry = 0.0

    # -- the store thread ----------------------------------------------------------------

    def stored(self, items: Sequence[Item]) -> None:
        """After a batch has committed: record answers, deliver to devices born."""
        for item in items:
            message = item.message
            if isinstance(message, CommandResult) and isinstance(message.id, str):
                self._answered(message)
            elif (isinstance(message, Status) and message.state == "online"
                  and (self.retained_births or not item.retained)):
                self.deliver(item.fleet, item.device)

    def tick(self) -> None:
        """Put back what nobody received; expire old commands (at most once a minute)."""
        with self._lock:
            undelivered, self._undelivered = self._undelivered, []
        now = self.clock.now()
        for command_id in undelivered:
            self.store.command_state(command_id, "queued", now)
        mono = self.clock.monotonic()
        if mono >= self._next_expiry:
            self._next_expiry = mono + EXPIRE_EVERY_S
            n = self.store.expire_commands(now - self.expire_s, now)
            if n:
                self.expired += n
                log.info("%d queued command%s expired (commands.expire_s)", n,
                         "s" if n != 1 else "")

    def deliver(self, fleet: str, device: str) -> int:
        """Publish the device's queued commands, oldest first; how many."""
        now = self.clock.now()
        pending = [c for c in reversed(self.store.commands(device, ("queued",), 1000))
                   if c.fleet == fleet]
        count = 0
        for cmd in pending:
            if now - cmd.created > self.expire_s:
                self.store.command_state(cmd.id, "expired", now)
                continue
            if not self.store.command_state(cmd.id, "sent", now):
                continue  # answered or expired meanwhile
            topic = Topics(self.topic_root, fleet, device).cmd(cmd.name)
            # not under self._lock: paho calls on_publish holding its own lock
            info = self.client.publish(topic, command_payload(cmd.id, cmd.args, cmd.token),
                                       qos=1)
            with self._lock:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._inflight[info.mid] = cmd.id
                elif early == NO_SUBSCRIBERS:
                    self._undelivered.append(cmd.id)
            count += 1
            log.info("delivering queued command %r (%s) to %s", cmd.name, cmd.id, device)
        self.sent += count
        return count

    def _answered(self, result: CommandResult) -> None:
        ident = str(result.id)
        payload = msgspec.to_builtins(result)
        if self.store.command_state(ident, "answered", self.clock.now(), payload):
            self.answered += 1
            log.info("queued command %s answered: %s", ident,
                     "ok" if result.ok else f"refused: {(result.error or '')[:200]}")

    # -- paho's network thread -------------------------------------------------------------

    def on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any = None) -> None:
        value = int(getattr(reason, "value", 0))
        with self._lock:
            command_id = self._inflight.pop(mid, None)
            if command_id is None:
                if len(self._early) < 10000:
                    self._early[mid] = value
            elif value == NO_SUBSCRIBERS:
                self._undelivered.append(command_id)
