"""What the operator CLI does: list the fleet's alerts, send a command to one device.

Alerts come from the collector's store: the latest message of each alert (per device and
alert id, by ``seq``) is the alert's current state. The active alerts of a device that is
offline (its retained status says so: :func:`edgewatch.collector.fleet.device_state_of`)
are *stale*: the device evaluates nothing while it is away, so they are listed as such
(``firing (stale: device offline since ...)``, ``"stale": true`` in JSON) and the
collector routes nothing new for them. They are live again once the device is back.

Commands go through the broker (docs/mqtt.md), one at a time, each waiting for the device's
``cmd_result``: :mod:`edgewatch.collector.command_exchange`.

Devices keep no persistent MQTT session, so the broker queues nothing for an offline
device. The collector subscribes only to what devices publish (never to command topics),
so the broker answers a command nobody can receive at once with "no matching subscribers"
(MQTT 5 reason 16, :class:`~edgewatch.collector.command_exchange.CommandNotDelivered`).
:func:`send_or_queue` then -- or when the device does not answer within the timeout
(:class:`~edgewatch.collector.command_exchange.CommandTimeout`) -- keeps the
command in the store's ``commands`` table as ``queued``; the collector delivers it when
the device's birth arrives and records its answer (:mod:`edgewatch.collector.commands`).
``edgewatch alerts commands`` lists them: queued, sent, answered (with the result) or
expired (``commands.expire_s``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgspec

from edgewatch.collector.command_exchange import CommandTimeout, OperatorError, send_command
from edgewatch.collector.fleet import device_state_of
from edgewatch.collector.store import QueuedCommand
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts.alert import SCHEMA as ALERT_SCHEMA
from edgewatch.contracts.alert import SEVERITY_ORDER, Alert
from edgewatch.contracts.command import RESULT_SCHEMA, CommandResult

QUEUEABLE = ("ack", "snooze", "enable", "disable", "set-threshold", "evidence.send",
             "model.push", "reference.push", "reference.rebuild")
"""Commands kept for an offline device (``list`` and ``evidence.list`` only read: they are
not queued)."""
_MESSAGE_WIDTH = 80


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


def alert_rows(alerts: Iterable[Alert],
               offline: Mapping[str, float | None] | None = None) -> list[dict[str, Any]]:
    """Alerts as plain data (``alerts list --json``): every field, defaults included, so
    that each row has the same keys; ``stale`` (an active alert of a device that is
    offline) and ``offline_since`` (its latest status time, else null) added."""
    offline = offline or {}
    return [{**_full(ALERT_SCHEMA, a), "stale": is_stale(a, offline),
             "offline_since": offline.get(a.device) if is_stale(a, offline) else None}
            for a in alerts]


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


def _cells(a: Alert, offline: Mapping[str, float | None]) -> list[str]:
    expected = "-" if a.expected is None else f"{a.expected.op} {a.expected.value}"
    message = a.message
    if len(message) > _MESSAGE_WIDTH:
        message = message[:_MESSAGE_WIDTH - 3] + "..."
    rule = f"+ {a.rule}" if a.incident else a.rule  # "+": a member of the incident above
    state = _stale_state(a, offline) if is_stale(a, offline) else a.state
    return [a.severity, state, a.device or "-", rule, a.subject or "-", _utc(a.since),
            "-" if a.observed is None else f"{a.observed:.4g}", expected, a.id or "-",
            message]


_HEADER = ["severity", "state", "device", "rule", "subject", "since (UTC)", "observed",
           "expected", "id", "message"]


def _footer(rows: list[Alert], offline: Mapping[str, float | None]) -> str:
    states = Counter(r.state for r in rows)
    parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    text = f"{len(rows)} alert{'s' if len(rows) != 1 else ''} ({parts})"
    stale = sum(1 for r in rows if is_stale(r, offline))
    if stale:
        text += (f"; {stale} stale (device offline: not evaluated, nothing routed, live "
                 "again when the device is back)")
    members = sum(1 for r in rows if r.incident)
    if members:
        text += (f"; {members} of them member{'s' if members != 1 else ''} of an incident "
                 "(rule marked '+', listed under its lead, not notified)")
    return text


def format_alerts(rows: Iterable[Alert],
                  offline: Mapping[str, float | None] | None = None) -> str:
    """A terminal table of :func:`list_alerts` rows, with a count by state at the end;
    the active alerts of ``offline`` devices (:func:`offline_devices`) marked stale."""
    rows = list(rows)
    offline = offline or {}
    if not rows:
        return "no alerts"
    table = [_HEADER] + [_cells(r, offline) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER) - 1)]

    def line(cells: list[str]) -> str:
        return " ".join(c.ljust(w) for c, w in zip(cells, widths)) + " " + cells[-1]

    header = line(_HEADER)
    body = [line(cells).rstrip() for cells in table[1:]]
    return "\n".join([header, "-" * len(header), *body, _footer(rows, offline)])


# --------------------------------------------------------------------------- queued commands


class CommandKeeper(DeviceSource, Protocol):
    def queue_command(self, command: QueuedCommand) -> bool: ...


def send_or_queue(mqtt_cfg: CollectorMqttConfig, store: CommandKeeper, fleet: str,
                  device: str, name: str, args: dict[str, Any], timeout_s: float = 10.0,
                  token: str = "", now: float | None = None) -> CommandResult | QueuedCommand:
    """:func:`send_command`; when the device cannot be reached (nobody subscribed to its
    command topic, or no answer in time) a command of :data:`QUEUEABLE` is kept in the
    store as ``queued`` -- under the id it was sent with, so a late answer to this very
    publish still settles it -- and returned; the collector delivers it on the device's
    next birth. Other commands raise as :func:`send_command` does."""
    command_id = str(uuid.uuid4())
    try:
        return send_command(mqtt_cfg, fleet, device, name, args, timeout_s, token,
                            command_id=command_id)
    except CommandTimeout:
        if name not in QUEUEABLE:
            raise
    queued = QueuedCommand(id=command_id, device=device, fleet=fleet, name=name,
                           args=dict(args), token=token,
                           created=time.time() if now is None else now)
    store.queue_command(queued)
    return queued


def _why_queued(fleet: str, device: str, name: str, why: str) -> str:
    return (f"command '{name}' to device {device!r} (fleet {fleet!r}): {why}")


def queued_message(store: DeviceSource, cmd: QueuedCommand) -> str:
    """What the operator reads when a command was queued."""
    state = store.device(cmd.device)
    if state is not None and not state.online:
        since = (" (no status received)" if state.status_time is None
                 else f" since {_utc(state.status_time)} UTC")
        why = f"{cmd.device} is offline{since}"
    else:
        why = f"{cmd.device} did not answer (most likely offline)"
    return (f"queued: {why}; '{cmd.name}' is delivered when it reconnects "
            f"(edgewatch alerts commands to see; id {cmd.id})")


def _args_text(args: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(args.items())) or "-"


def _result_text(cmd: QueuedCommand) -> str:
    if cmd.result is None:
        return "-"
    if cmd.result.get("ok"):
        return "ok"
    error = str(cmd.result.get("error", ""))
    return f"refused: {error[:_MESSAGE_WIDTH]}"


_COMMAND_HEADER = ["created (UTC)", "state", "device", "command", "arguments", "id",
                   "result"]


def format_commands(rows: Iterable[QueuedCommand]) -> str:
    """A terminal table of kept commands."""
    rows = list(rows)
    if not rows:
        return "no queued commands"
    table = [_COMMAND_HEADER] + [
        [_utc(c.created), c.state, c.device, c.name, _args_text(c.args), c.id,
         _result_text(c)] for c in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COMMAND_HEADER) - 1)]
    lines = [" ".join(c.ljust(w) for c, w in zip(cells, widths)) + " " + cells[-1]
             for cells in table]
    states = Counter(c.state for c in rows)
    footer = f"{len(rows)} command{'s' if len(rows) != 1 else ''} (" + ", ".join(
        f"{n} {s}" for s, n in sorted(states.items())) + ")"
    return "\n".join([lines[0], "-" * len(lines[0]), *(x.rstrip() for x in lines[1:]),
                      footer])


# --------------------------------------------------------------------------- stale alerts


class FleetSource(Protocol):
    def devices(self) -> list[Any]: ...


def offline_devices(store: FleetSource, now: float,
                    stale_after_s: float) -> dict[str, float | None]:
    """Device -> since when it is offline (its latest status time), for the devices the
    store says are offline."""
    return {d.device: d.status_time for d in store.devices()
            if device_state_of(d.online, d.last_window_end, d.status_time, now,
                               stale_after_s) == "offline"}


def is_stale(alert: Alert, offline: Mapping[str, float | None]) -> bool:
    """An active alert of an offline device: not evaluated while the device is away."""
    return alert.state != "resolved" and alert.device in offline


def _stale_state(alert: Alert, offline: Mapping[str, float | None]) -> str:
    since = offline.get(alert.device)
    when = "" if since is None else f" since {_utc(since)}"
    return f"{alert.state} (stale: device offline{when})"
