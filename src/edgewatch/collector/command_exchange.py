"""Sending one command to one device through the broker and waiting for its answer.

Commands go through the broker (docs/mqtt.md): a short-lived MQTT 5 client with a unique
client id subscribes to ``<root>/<fleet>/<device>/cmd_result``, publishes
``{"schema": "edgewatch.cmd/1", "id": <uuid>, ...arguments}`` with QoS 1 on
``<root>/<fleet>/<device>/cmd/<name>`` and waits for the ``cmd_result`` carrying that id.
The device answers through its outbox, so an answer takes a few hundred milliseconds.

The broker answers a command nobody can receive at once with "no matching subscribers"
(MQTT 5 reason 16, :class:`CommandNotDelivered`); no answer within the timeout is
:class:`CommandTimeout`. :func:`edgewatch.collector.operations.send_or_queue` keeps such a
command for the device's next birth.

Answers are decoded like every device message (:func:`edgewatch.contracts.decode`: JSON or
compressed MessagePack) into :class:`~edgewatch.contracts.CommandResult`.

The client uses the collector's ``[mqtt]`` settings (host, port, user, TLS): the broker ACL
lets the collector's identity write commands and read results.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from typing import Any

from edgewatch.collector.commands import NO_SUBSCRIBERS, command_payload
from edgewatch.collector.mqtt_client import make_client
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts.codec import Rejected, decode
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.topics import ID_PATTERN, Topics
from edgewatch.errors import EdgewatchError

log = logging.getLogger(__name__)
_POLL_S = 0.05


class OperatorError(EdgewatchError):
    """The broker cannot be reached, refused the operator's client, or the request is bad."""


class CommandTimeout(OperatorError):
    """No answer from the device in time: it is most likely offline."""

    def __init__(self, message: str, command_id: str = "") -> None:
        super().__init__(message)
        self.command_id = command_id


class CommandNotDelivered(CommandTimeout):
    """The broker reported that nobody at all is subscribed to the command's topic."""


@dataclasses.dataclass
class _Exchange:
    """What the MQTT thread found out, for the caller's thread."""

    command_id: str
    connected: threading.Event = dataclasses.field(default_factory=threading.Event)
    subscribed: threading.Event = dataclasses.field(default_factory=threading.Event)
    published: threading.Event = dataclasses.field(default_factory=threading.Event)
    answered: threading.Event = dataclasses.field(default_factory=threading.Event)
    error: str = ""
    publish_reason: Any = None
    result: CommandResult | None = None

    def on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            self.error = f"the broker refused the connection: {reason}"
        self.connected.set()

    def on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: Any, _p: Any = None) -> None:
        if reasons and reasons[0].is_failure:
            self.error = f"the broker refused the subscription to cmd_result: {reasons[0]}"
        self.subscribed.set()

    def on_publish(self, _c: Any, _u: Any, _mid: int, reason: Any, _p: Any = None) -> None:
        self.publish_reason = reason
        self.published.set()

    def on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if not self.answered.is_set():
            self.error = self.error or f"disconnected from the broker: {reason}"

    def on_message(self, client: Any, _u: Any, msg: Any) -> None:
        if msg.qos > 0:
            client.ack(msg.mid, msg.qos)
        ctype = getattr(msg.properties, "ContentType", None) or None
        try:
            result = decode("cmd_result", msg.payload, ctype)
        except Rejected as exc:  # not an answer anyone can read: not ours either
            log.debug("ignoring a cmd_result that does not decode: %s", exc)
            return
        if isinstance(result, CommandResult) and str(result.id) == self.command_id:
            self.result = result
            self.answered.set()


def _check_level(value: str, what: str) -> None:
    if not ID_PATTERN.fullmatch(value):
        raise OperatorError(f"{what} {value[:130]!r}: expected letters, digits, '.', '_' or '-' "
                            "(starting with a letter or digit, at most 128)")


def _command_payload(name: str, args: dict[str, Any], token: str,
                     command_id: str = "") -> tuple[str, bytes]:
    command_id = command_id or str(uuid.uuid4())
    try:
        raw = command_payload(command_id, args, token)
    except (TypeError, ValueError) as exc:
        raise OperatorError(f"command {name!r}: arguments are not plain JSON ({exc})") from exc
    return command_id, raw


def _wait(ex: _Exchange, event: threading.Event, deadline: float) -> bool:
    """True once ``event`` is set; False at the deadline; OperatorError on a failure."""
    while not event.wait(min(_POLL_S, max(deadline - time.monotonic(), 0.0))):
        if ex.error:
            raise OperatorError(ex.error)
        if time.monotonic() >= deadline:
            return False
    if ex.error:
        raise OperatorError(ex.error)
    return True


def _client(cfg: CollectorMqttConfig, ex: _Exchange) -> Any:
    unique = f"edgewatch-operator-{uuid.uuid4().hex[:12]}"
    client = make_client(dataclasses.replace(cfg, client_id=unique, protocol="5"))
    client.on_connect = ex.on_connect
    client.on_subscribe = ex.on_subscribe
    client.on_publish = ex.on_publish
    client.on_disconnect = ex.on_disconnect
    client.on_message = ex.on_message
    return client


def _connect(client: Any, cfg: CollectorMqttConfig, ex: _Exchange, deadline: float) -> None:
    where = f"{cfg.host}:{cfg.port}"
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive_s, clean_start=True)
    except (OSError, ValueError) as exc:
        raise OperatorError(f"cannot reach the broker at {where}: {exc}") from exc
    client.loop_start()
    if not _wait(ex, ex.connected, deadline):
        raise OperatorError(f"the broker at {where} did not answer the connection in time")


def _not_delivered(fleet: str, device: str, name: str, why: str) -> str:
    return (f"command '{name}' to device {device!r} (fleet {fleet!r}): {why}. Devices keep "
            "no persistent MQTT session, so the broker does not queue commands for an "
            "offline device: it was not delivered. Check the device (edgewatch fleet "
            "status) and send it again once it is online.")


def _exchange(client: Any, topics: Topics, name: str, raw: bytes, ex: _Exchange,
              deadline: float) -> None:
    client.subscribe(topics.cmd_result, qos=1)
    if not _wait(ex, ex.subscribed, deadline):
        raise OperatorError("the broker did not confirm the subscription to cmd_result")
    client.publish(topics.cmd(name), raw, qos=1)
    if not _wait(ex, ex.published, deadline):
        raise OperatorError("the broker did not acknowledge the command")
    reason = ex.publish_reason
    if reason is not None and reason.value == NO_SUBSCRIBERS:
        raise CommandNotDelivered(_not_delivered(
            topics.fleet, topics.device, name, "nobody is subscribed to its command topic"),
            ex.command_id)
    if reason is not None and reason.is_failure:
        raise OperatorError(f"the broker refused the command: {reason} (check the ACL)")


def send_command(mqtt_cfg: CollectorMqttConfig, fleet: str, device: str, name: str,
                 args: dict[str, Any], timeout_s: float = 10.0,
                 token: str = "", command_id: str = "") -> CommandResult:
    """Send command ``name`` to one device and return its ``cmd_result``, decoded.

    The result is returned as the device sent it, ``ok`` false included (its ``error``
    says why). Raises :class:`CommandTimeout` when no answer arrives within ``timeout_s``
    (:class:`CommandNotDelivered` at once when the broker says nobody subscribes to the
    command topic) and :class:`OperatorError` when the broker cannot be used.
    """
    _check_level(fleet, "fleet")
    _check_level(device, "device")
    _check_level(name, "command name")
    command_id, raw = _command_payload(name, args, token, command_id)
    topics = Topics(mqtt_cfg.topic_root, fleet, device)
    ex = _Exchange(command_id)
    deadline = time.monotonic() + timeout_s
    client = _client(mqtt_cfg, ex)
    try:
        _connect(client, mqtt_cfg, ex, deadline)
        _exchange(client, topics, name, raw, ex, deadline)
        if not _wait(ex, ex.answered, deadline) or ex.result is None:
            raise CommandTimeout(_not_delivered(
                fleet, device, name, f"no answer within {timeout_s:g} s, so the device is "
                "most likely offline (if it was online but slow, it may still carry the "
                "command out; the collector stores its cmd_result)"), command_id)
        return ex.result
    finally:
        client.disconnect()
        client.loop_stop()

