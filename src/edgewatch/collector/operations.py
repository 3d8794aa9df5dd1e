"""What the operator CLI does: list the fleet's alerts, send a command to one device.

Alerts come from the collector's store: the latest message of each alert (per device and
alert id, by ``seq``) is the alert's current state.

Commands go through the broker (docs/mqtt.md): a short-lived MQTT 5 client with a unique
client id subscribes to ``<root>/<fleet>/<device>/cmd_result``, publishes
``{"schema": "edgewatch.cmd/1", "id": <uuid>, ...arguments}`` with QoS 1 on
``<root>/<fleet>/<device>/cmd/<name>`` and waits for the ``cmd_result`` carrying that id.
The device answers through its outbox, so an answer takes a few hundred milliseconds.
Devices keep no persistent session: a command sent while the device is offline is not
queued anywhere, it is simply lost (:class:`CommandTimeout` says so).

Answers are decoded like every device message (:func:`edgewatch.contracts.decode`: JSON or
compressed MessagePack) into :class:`~edgewatch.contracts.CommandResult`.

The client uses the collector's ``[mqtt]`` settings (host, port, user, TLS): the broker ACL
lets the collector's identity write commands and read results.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from edgewatch.collector.ingest import make_client
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts.alert import SCHEMA as ALERT_SCHEMA
from edgewatch.contracts.alert import SEVERITY_ORDER, Alert
from edgewatch.contracts.codec import Rejected, decode
from edgewatch.contracts.command import RESULT_SCHEMA, CommandResult
from edgewatch.contracts.command import SCHEMA as CMD_SCHEMA
from edgewatch.contracts.topics import ID_PATTERN, Topics
from edgewatch.errors import EdgewatchError

log = logging.getLogger(__name__)
_NO_SUBSCRIBERS = 0x10
_POLL_S = 0.05
_MESSAGE_WIDTH = 80


class OperatorError(EdgewatchError):
    """The broker cannot be reached, refused the operator's client, or the request is bad."""


class CommandTimeout(OperatorError):
    """No answer from the device in time: it is offline (the command was not delivered)."""


class CommandNotDelivered(CommandTimeout):
    """The broker reported that nobody at all is subscribed to the command's topic."""


# --------------------------------------------------------------------------- alerts


class AlertSource(Protocol):
    def alerts(self, device: str | None = None, limit: int = 100) -> list[Alert]: ...


def _alert_key(alert: Alert) -> tuple[str, str]:
    """(device, alert id); an alert without an id stands for itself."""
    own = f"{alert.boot_id}#{alert.seq}"
    return alert.device, alert.id or own


def _order(alert: Alert) -> tuple[int, float, str]:
    """Most severe first, then newest first, then by device."""
    return (SEVERITY_ORDER.get(alert.severity, len(SEVERITY_ORDER)), -alert.since,
            alert.device)


def list_alerts(store: AlertSource, device: str | None = None, active_only: bool = True,
                *, limit: int = 10000) -> list[Alert]:
    """The latest message of each alert (per device and id, highest ``seq``), most severe
    and newest first, each incident's members right after their lead; ``active_only``
    leaves out resolved ones.

    Reads the newest ``limit`` alert messages: an alert whose last message is older than
    that is not listed.
    """
    latest: dict[tuple[str, str], Alert] = {}
    for alert in store.alerts(device, limit):
        key = _alert_key(alert)
        if key not in latest or alert.seq > latest[key].seq:
            latest[key] = alert
    rows = sorted((a for a in latest.values() if not active_only or a.state != "resolved"),
                  key=_order)
    return _by_incident(rows)


def _by_incident(rows: list[Alert]) -> list[Alert]:
    """``rows`` with each incident member moved right after its lead (a member whose lead
    is not among the rows keeps its place)."""
    leads = {(a.device, a.id) for a in rows if not a.incident}
    members: dict[tuple[str, str], list[Alert]] = {}
    for a in rows:
        if a.incident and (a.device, a.incident) in leads:
            members.setdefault((a.device, a.incident), []).append(a)
    out: list[Alert] = []
    for a in rows:
        if a.incident and (a.device, a.incident) in leads:
            continue
        out.append(a)
        out.extend(members.get((a.device, a.id), []) if not a.incident else [])
    return out


def _full(schema: str, message: msgspec.Struct) -> dict[str, Any]:
    """Every field of a message, defaults included (the wire form leaves them out)."""
    return {"schema": schema, **{name: msgspec.to_builtins(getattr(message, name))
                                 for name in message.__struct_fields__}}


def alert_rows(alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """Alerts as plain data (``alerts list --json``): every field, defaults included, so
    that each row has the same keys."""
    return [_full(ALERT_SCHEMA, a) for a in alerts]


def result_row(result: CommandResult) -> dict[str, Any]:
    """A command's result as plain data (``alerts ... --json``), ``ok`` always present."""
    return _full(RESULT_SCHEMA, result)


class DeviceSource(AlertSource, Protocol):
    def device(self, device: str) -> Any: ...


def command_target(store: DeviceSource, device: str | None = None,
                   alert: str | None = None) -> tuple[str, str]:
    """(fleet, device) to send a command to: ``device`` as the store knows it, or, without
    it, the device that raised the active alert with id ``alert``. OperatorError when the
    store cannot tell."""
    if device is None and alert:
        found = {a.device for a in list_alerts(store, None, active_only=True)
                 if a.id == alert}
        if len(found) != 1:
            raise OperatorError(f"no active alert with id {alert[:80]!r} in the collector's "
                                "store: name the device")
        device = found.pop()
    if not device:
        raise OperatorError("name the device the command is for")
    state = store.device(device)
    if state is None:
        raise OperatorError(f"the collector does not know device {device[:130]!r}: "
                            "give its fleet")
    return str(state.fleet), device


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _cells(a: Alert) -> list[str]:
    expected = "-" if a.expected is None else f"{a.expected.op} {a.expected.value}"
    message = a.message
    if len(message) > _MESSAGE_WIDTH:
        message = message[:_MESSAGE_WIDTH - 3] + "..."
    rule = f"+ {a.rule}" if a.incident else a.rule  # "+": a member of the incident above
    return [a.severity, a.state, a.device or "-", rule, a.subject or "-", _utc(a.since),
            "-" if a.observed is None else f"{a.observed:.4g}", expected, a.id or "-",
            message]


_HEADER = ["severity", "state", "device", "rule", "subject", "since (UTC)", "observed",
           "expected", "id", "message"]


def _footer(rows: list[Alert]) -> str:
    states = Counter(r.state for r in rows)
    parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    text = f"{len(rows)} alert{'s' if len(rows) != 1 else ''} ({parts})"
    members = sum(1 for r in rows if r.incident)
    if members:
        text += (f"; {members} of them member{'s' if members != 1 else ''} of an incident "
                 "(rule marked '+', listed under its lead, not notified)")
    return text


def format_alerts(rows: Iterable[Alert]) -> str:
    """A terminal table of :func:`list_alerts` rows, with a count by state at the end."""
    rows = list(rows)
    if not rows:
        return "no alerts"
    table = [_HEADER] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER) - 1)]

    def line(cells: list[str]) -> str:
        return " ".join(c.ljust(w) for c, w in zip(cells, widths)) + " " + cells[-1]

    header = line(_HEADER)
    body = [line(cells).rstrip() for cells in table[1:]]
    return "\n".join([header, "-" * len(header), *body, _footer(rows)])


# --------------------------------------------------------------------------- commands


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


def _command_payload(name: str, args: dict[str, Any], token: str) -> tuple[str, bytes]:
    command_id = str(uuid.uuid4())
    body: dict[str, Any] = {"schema": CMD_SCHEMA, "id": command_id}
    body.update({k: v for k, v in args.items() if k not in ("schema", "id", "token")})
    if token:
        body["token"] = token
    try:
        raw = json.dumps(body, allow_nan=False).encode("utf-8")
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
    if reason is not None and reason.value == _NO_SUBSCRIBERS:
        raise CommandNotDelivered(_not_delivered(
            topics.fleet, topics.device, name, "nobody is subscribed to its command topic"))
    if reason is not None and reason.is_failure:
        raise OperatorError(f"the broker refused the command: {reason} (check the ACL)")


def send_command(mqtt_cfg: CollectorMqttConfig, fleet: str, device: str, name: str,
                 args: dict[str, Any], timeout_s: float = 10.0,
                 token: str = "") -> CommandResult:
    """Send command ``name`` to one device and return its ``cmd_result``, decoded.

    The result is returned as the device sent it, ``ok`` false included (its ``error``
    says why). Raises :class:`CommandTimeout` when no answer arrives within ``timeout_s``
    (:class:`CommandNotDelivered` at once when the broker says nobody subscribes to the
    command topic) and :class:`OperatorError` when the broker cannot be used.
    """
    _check_level(fleet, "fleet")
    _check_level(device, "device")
    _check_level(name, "command name")
    command_id, raw = _command_payload(name, args, token)
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
                "command out; the collector stores its cmd_result)"))
        return ex.result
    finally:
        client.disconnect()
        client.loop_stop()
