"""Commands to a device (``edgewatch.cmd/1`` on ``cmd/<name>``) and their results
(``edgewatch.cmd_result/1``)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from edgewatch.contracts.alert import Alert, AlertSeverity, AlertState
from edgewatch.contracts.bounds import MAX_ITEMS, Count, Id, Name, Real, Seq, SmallInt, Text, Time
from edgewatch.contracts.envelope import Loss
from edgewatch.contracts.evidence import FrameList

SCHEMA = "edgewatch.cmd/1"
RESULT_SCHEMA = "edgewatch.cmd_result/1"
MAX_COMMAND_BYTES = 64 * 1024

Scalar = bool | SmallInt | Real | Text | None
"""An argument or result value: commands carry flat scalars and lists of them."""
Value = Scalar | Annotated[list[bool | SmallInt | Real | Text], Meta(max_length=MAX_ITEMS)]
Values = Annotated[dict[Name, Value], Meta(max_length=MAX_ITEMS)]
CommandId = Id | SmallInt | None


class Command(Struct, forbid_unknown_fields=True, frozen=True):
    """An operator's request, decoded. On the wire it is one flat JSON object: optional
    ``schema``, ``id`` and ``token`` beside the handler's arguments."""

    args: Values
    id: CommandId = None
    """Echoed in the result so the sender can match it."""
    token: Text = ""
    """Shared secret, when the device requires one (alerts.command_token)."""


class Rule(Struct, forbid_unknown_fields=True):
    """An alert rule as the device runs it (``list`` results)."""

    name: Name
    metric: Text
    op: Literal[">", ">=", "<", "<="]
    threshold: Real
    severity: AlertSeverity
    for_windows: SmallInt = 1
    resolve_windows: SmallInt = 1
    resolve_threshold: Real | None = None
    enabled: bool = True
    incident: Text = ""
    """The rule's incident group (its ``incident`` setting or the default of its metric)."""


class CommandResult(Struct, forbid_unknown_fields=True, omit_defaults=True, tag_field="schema",
                    tag=RESULT_SCHEMA):
    """The device's answer to one command: ``ok`` and ``error``, plus what the handler
    returned (the fields below that it sets)."""

    command: Text
    """The command's name (the topic's last level)."""
    ok: bool
    """True when the command was carried out (always present)."""
    id: CommandId = None
    """The command's id, echoed."""
    error: Text | None = None
    """Why it was refused (ok false)."""
    pong: bool | None = None
    alert: Id | None = None
    state: AlertState | None = None
    snoozed_until: Time | None = None
    rule: Name | None = None
    enabled: bool | None = None
    threshold: Real | None = None
    resolve_threshold: Real | None = None
    alerts: Annotated[list[Alert], Meta(max_length=MAX_ITEMS)] | None = None
    rules: Annotated[list[Rule], Meta(max_length=MAX_ITEMS)] | None = None
    frames: FrameList | None = None
    """``evidence.list`` and ``evidence.send``: the frames selected, with their files."""
    more: bool | None = None
    """More frames matched than the result lists (raise ``limit`` or narrow the selection)."""
    chunks: Count | None = None
    """``evidence.send``: chunks queued for sending on ``evidence``."""
    chunk_bytes: Count | None = None
    """``evidence.send``: the device's chunk size."""
    update: Id | None = None
    """``model.push``: the update's id."""
    update_state: Literal["receiving", "staged"] | None = None
    """``model.push``: ``receiving`` (chunks missing) or ``staged`` (every file verified and
    handed to the update lifecycle). A rejected update (a file's sha256 differs, too large,
    no room, bad signature) is answered ``ok: false`` with the reason in ``error``."""
    missing: Annotated[list[Text], Meta(max_length=MAX_ITEMS)] | None = None
    """``model.push``: the chunks still missing, ``<file>:<ranges>`` (``model.onnx:0-9,12``)."""
    received: Count | None = None
    """``model.push``: chunks received so far, of ``chunks``."""
    reference_id: Id | None = None
    """``reference.push``: the reference now active (from the next window)."""
    previous_reference_id: Id | None = None
    """``reference.push``: the reference it replaced (kept on the device)."""
    context: Name | None = None
    """``reference.push``: the reference context switched ("default" or a configured one)."""
    accepted_by: Text | None = None
    """``reference.push``: who accepted the new reference, and why (the operator's words)."""
    accepted_at: Time | None = None
    """``reference.push``: when the device switched (seconds since the epoch)."""
    rebuild_frames: Count | None = None
    """``reference.rebuild``: the usable frames of ``context`` the device profiles before it
    switches to the reference built from them (0: a rebuild cancelled)."""
    rebuild_profiled: Count | None = None
    """``reference.rebuild`` with ``status``: the frames profiled so far, of
    ``rebuild_frames``."""
    rebuild_outcome: Text | None = None
    """``reference.rebuild`` with ``status``: how the last rebuild ended (switched to which
    reference, cancelled, dropped because another switch came first, or failed, and why)."""
    device: Id = ""
    boot_id: Id = ""
    seq: Seq = 0
    historical: bool = False
    loss: Loss | None = None
