"""The ``commands`` table: operator commands to devices that were offline when sent.

A row is written by the operator CLI when the broker reports that nobody is subscribed to
the device's command topic (MQTT 5 reason 16), or when the device does not answer in time,
with state ``queued``. The collector publishes the queued commands of a device when the
device's birth (its ``online`` status) arrives (``sent``), and records the device's
``cmd_result`` for the command's id (``answered``, the result as JSON). A command neither
answered nor sent within ``commands.expire_s`` of its creation becomes ``expired``.

State changes only move forward: ``queued`` <-> ``sent`` (a publish nobody received goes
back to ``queued``), then ``answered`` or ``expired``, which are final.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Literal

from edgewatch.collector.store.drivers import Row

CommandState = Literal["queued", "sent", "answered", "expired"]
COMMAND_STATES: tuple[CommandState, ...] = ("queued", "sent", "answered", "expired")
OPEN_STATES: tuple[CommandState, ...] = ("queued", "sent")
"""States a command can still leave (to ``answered`` or ``expired``)."""

_COLUMNS = "id, device, fleet, name, args, token, created, state, updated, result"
INSERT = (f"INSERT INTO commands ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (id) DO NOTHING")
_OPEN_SQL = ", ".join(f"'{s}'" for s in OPEN_STATES)


@dataclasses.dataclass(frozen=True)
class QueuedCommand:
    """One operator command kept in the store."""

    id: str
    device: str
    fleet: str
    name: str
    """The command topic's last level (``ack``, ``snooze``, ...)."""
    args: dict[str, Any]
    created: float
    state: CommandState = "queued"
    updated: float = 0.0
    """When the state last changed."""
    result: dict[str, Any] | None = None
    """The device's ``cmd_result`` (``answered``), as plain data."""
    token: str = dataclasses.field(default="", repr=False)
    """The command token sent with it (never shown)."""

    def row(self) -> dict[str, Any]:
        """Plain data for ``alerts commands --json`` (the token left out)."""
        out = dataclasses.asdict(self)
        out.pop("token")
        return out


def insert_row(cmd: QueuedCommand) -> tuple[Any, ...]:
    return (cmd.id, cmd.device, cmd.fleet, cmd.name, json.dumps(cmd.args, sort_keys=True),
            cmd.token, cmd.created, cmd.state, cmd.updated or cmd.created,
            None if cmd.result is None else json.dumps(cmd.result))


def select_query(device: str | None, states: Sequence[str] | None,
                 limit: int) -> tuple[str, tuple[Any, ...]]:
    """Commands, newest first."""
    where: list[str] = []
    params: list[Any] = []
    if device is not None:
        where.append("device = ?")
        params.append(device)
    if states:
        where.append(f"state IN ({', '.join('?' for _ in states)})")
        params.extend(states)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return (f"SELECT {_COLUMNS} FROM commands{clause} ORDER BY created DESC, id DESC LIMIT ?",
            (*params, max(int(limit), 0)))


def transition(cmd_id: str, state: CommandState, now: float,
               result: dict[str, Any] | None) -> tuple[str, tuple[Any, ...]]:
    """The update moving one open command to ``state``; its ``RETURNING id`` says whether
    it did (an answered or expired command stays so)."""
    sql = ("UPDATE commands SET state = ?, updated = ?, result = COALESCE(?, result) "
           f"WHERE id = ? AND state IN ({_OPEN_SQL}) RETURNING id")
    return sql, (state, now, None if result is None else json.dumps(result), cmd_id)


EXPIRE = (f"UPDATE commands SET state = 'expired', updated = ? WHERE state IN ({_OPEN_SQL}) "
          "AND created < ? RETURNING id")


def read(rows: Sequence[Row]) -> list[QueuedCommand]:
    out = []
    for r in rows:
        result = None if r[9] is None else json.loads(r[9])
        out.append(QueuedCommand(id=str(r[0]), device=str(r[1]), fleet=str(r[2]),
                                 name=str(r[3]), args=json.loads(r[4]), token=str(r[5]),
                                 created=float(r[6]), state=r[7], updated=float(r[8]),
                                 result=result))
    return out
