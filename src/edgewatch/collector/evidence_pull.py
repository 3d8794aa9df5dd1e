"""``edgewatch evidence list|pull``: evidence frames fetched from a device through the broker
and the collector (docs/evidence.md).

``list`` sends ``evidence.list`` and prints the frames the device holds. ``pull``:

1. reads what the collector already knows: the device's manifest in ``[evidence] dir`` and
   the answers of earlier ``evidence.send`` commands kept in the store (a command queued for
   an offline device is answered there when the collector delivers it on its birth);
2. when every file of the selected frames is complete, writes the dataset and stops;
3. otherwise sends ``evidence.send``: the selection (``--alert``, ``--kind``) the first time,
   then only the chunks still missing (``files = ["<name>:<ranges>", ...]``). The device
   answers with its frames and files and sends the chunks; the collector's ingest keeps
   them (:class:`~edgewatch.collector.evidence.ChunkStore`);
4. waits while chunks keep arriving (at most ``[evidence] wait_s`` without a new one), then
   writes the dataset of the complete frames, or says what is missing: the next pull asks
   for exactly that.

A device that is offline (the broker finds nobody subscribed to its command topic, or it does
not answer in time) gets the request queued (:func:`~edgewatch.collector.operations.send_or_queue`),
and pull says so and exits 0: the collector delivers it when the device is back, the chunks
arrive, and the next pull finishes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from edgewatch.collector.command_exchange import OperatorError, send_command
from edgewatch.collector.evidence import ChunkStore, Dataset, build_dataset
from edgewatch.collector.operations import (
    CommandKeeper,
    command_target,
    queued_message,
    send_or_queue,
)
from edgewatch.collector.store import QueuedCommand
from edgewatch.config.collector import CollectorConfig
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.evidence import EvidenceFrame

log = logging.getLogger(__name__)


class EvidenceKeeper(CommandKeeper, Protocol):
    def commands(self, device: str | None = None, states: Sequence[str] | None = None,
                 limit: int = 100) -> list[QueuedCommand]: ...

MAX_FILES_PER_COMMAND = 256
"""A command argument list holds at most 256 items (contracts.command.Values)."""
_POLL_S = 0.2


def _format_ranges(indices: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = None
    for i in sorted(indices):
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            parts.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(parts)


def file_specs(missing: dict[str, list[int]], chunks: dict[str, int]) -> list[str]:
    """``<name>`` for a file of which nothing is here, ``<name>:<ranges>`` otherwise."""
    out = []
    for name, indices in sorted(missing.items()):
        if len(indices) >= chunks.get(name, len(indices)):
            out.append(name)
        else:
            out.append(f"{name}:{_format_ranges(indices)}")
    return out


@dataclasses.dataclass
class PullReport:
    device: str
    state: str
    """``complete``, ``incomplete``, ``queued`` or ``empty`` (the device has no such frame)."""
    frames: int = 0
    files: int = 0
    missing_chunks: int = 0
    requested_chunks: int = 0
    """Chunks the device queued for this pull (the missing ones only, when resuming)."""
    received_chunks: int = 0
    dataset: Dataset | None = None
    message: str = ""

    def text(self) -> str:
        if self.message:
            return self.message
        head = (f"{self.device}: {self.frames} frames, {self.received_chunks} chunks received "
                f"of {self.requested_chunks} requested")
        if self.state == "complete" and self.dataset is not None:
            ds = self.dataset
            return (f"{head}; dataset in {ds.out}: {ds.images} images, {ds.boxes} boxes "
                    f"({', '.join(ds.classes) or 'no class'}), index.html")
        written = (f"; {self.dataset.images} complete frames written to {self.dataset.out}"
                   if self.dataset is not None and self.dataset.images else "")
        return (f"{head}; incomplete: {self.missing_chunks} chunks still missing{written}. "
                "Run the same pull again to fetch only those.")

    def row(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.dataset is not None:
            out["dataset"] = {**dataclasses.asdict(self.dataset), "out": str(self.dataset.out)}
        return out


def _absorb(store: EvidenceKeeper, chunks: ChunkStore, device: str) -> None:
    """Add the answers of evidence commands kept in the store to the device's manifest."""
    for cmd in reversed(store.commands(device, ("answered",), 200)):
        if cmd.name not in ("evidence.send", "evidence.list") or not cmd.result:
            continue
        if not cmd.result.get("ok") or not cmd.result.get("frames"):
            continue
        try:
            frames = msgspec.convert(cmd.result["frames"], list[EvidenceFrame])
        except msgspec.ValidationError:
            continue
        chunks.merge(device, frames)


def _open_request(store: EvidenceKeeper, device: str) -> QueuedCommand | None:
    """An ``evidence.send`` still waiting for the device (queued, or sent and unanswered)."""
    for cmd in store.commands(device, ("queued", "sent"), 100):
        if cmd.name == "evidence.send":
            return cmd
    return None


def selection(alert: str | None, kind: str | None, limit: int) -> dict[str, Any]:
    args: dict[str, Any] = {"limit": limit}
    if alert:
        args["alert"] = alert
    if kind:
        args["kind"] = kind
    return args


def pull(cfg: CollectorConfig, store: EvidenceKeeper, device: str, out: str | Path, *,
         alert: str | None = None, kind: str | None = None, fleet: str | None = None,
         limit: int = 200, timeout_s: float = 10.0, wait_s: float | None = None,
         token: str = "", now: float | None = None) -> PullReport:
    """Fetch the selected frames of ``device`` into the dataset folder ``out`` (module doc)."""
    known_fleet, device = command_target(store, device)
    fleet = fleet or known_fleet
    chunks = ChunkStore(cfg.evidence.dir)
    wait_s = cfg.evidence.wait_s if wait_s is None else wait_s
    _absorb(store, chunks, device)
    frames = chunks.select(device, alert, kind)
    missing = chunks.missing(device, frames)
    report = PullReport(device, "incomplete", frames=len(frames))
    if frames and not missing:
        return _finish(report, chunks, device, frames, out, alert)
    pending = _open_request(store, device)
    state = store.device(device)
    if pending is not None and (state is None or not state.online):
        report.state = "queued"
        report.message = (f"still queued: {device} is offline; the request ({pending.id}, "
                          f"{pending.state}) is delivered when it reconnects; pull again then")
        return report
    requests = ([selection(alert, kind, limit)] if not frames else
                _resume_requests(missing, frames))
    before = chunks.present(device, frames)
    for args in requests:
        result = send_or_queue(cfg.mqtt, store, fleet, device, "evidence.send", args,
                               timeout_s=timeout_s, token=token, now=now)
        if isinstance(result, QueuedCommand):
            report.state = "queued"
            report.message = queued_message(store, result).replace(
                "(edgewatch alerts commands to see",
                "(edgewatch alerts commands to see; pull again after it reconnected")
            return report
        _check(result, device)
        report.requested_chunks += result.chunks or 0
        if result.frames:
            chunks.merge(device, result.frames)
    if not frames:
        frames = chunks.select(device, alert, kind)
        if not frames:
            report.state = "empty"
            report.message = f"{device}: no evidence frames match" + (
                f" alert {alert}" if alert else "") + (f" kind {kind}" if kind else "")
            return report
    report.frames = len(frames)
    _wait(chunks, device, frames, wait_s)
    report.received_chunks = chunks.present(device, frames) - before
    return _finish(report, chunks, device, frames, out, alert)


def _resume_requests(missing: dict[str, list[int]],
                     frames: Sequence[EvidenceFrame]) -> list[dict[str, Any]]:
    counts = {f.name: f.chunks for fr in frames for f in fr.files}
    specs = file_specs(missing, counts)
    return [{"files": specs[i:i + MAX_FILES_PER_COMMAND], "limit": 500}
            for i in range(0, len(specs), MAX_FILES_PER_COMMAND)]


def _check(result: CommandResult, device: str) -> None:
    if not result.ok:
        raise OperatorError(f"{device} refused evidence.send: {result.error}")


def _wait(chunks: ChunkStore, device: str, frames: Sequence[EvidenceFrame],
          wait_s: float) -> None:
    """Until every chunk is here, or none arrived for ``wait_s``."""
    last = chunks.present(device, frames)
    idle_since = time.monotonic()
    while chunks.missing(device, frames):
        time.sleep(_POLL_S)
        now = chunks.present(device, frames)
        if now != last:
            last, idle_since = now, time.monotonic()
        elif time.monotonic() - idle_since > wait_s:
            break


def _finish(report: PullReport, chunks: ChunkStore, device: str,
            frames: Sequence[EvidenceFrame], out: str | Path,
            alert: str | None) -> PullReport:
    missing = chunks.missing(device, frames)
    report.missing_chunks = sum(len(v) for v in missing.values())
    report.files = sum(len(f.files) for f in frames)
    title = f"edgewatch evidence: {device}" + (f", alert {alert}" if alert else "")
    report.dataset = build_dataset(chunks, device, frames, out, title=title)
    report.state = "complete" if not missing else "incomplete"
    return report


# --------------------------------------------------------------------------- list


def list_frames(cfg: CollectorConfig, store: EvidenceKeeper, device: str, *,
                alert: str | None = None, kind: str | None = None, fleet: str | None = None,
                limit: int = 200, timeout_s: float = 10.0,
                token: str = "") -> CommandResult:
    """The device's answer to ``evidence.list`` (frames, triggers, files); its frames are
    added to the collector's manifest."""
    known_fleet, device = command_target(store, device)
    result = send_command(cfg.mqtt, fleet or known_fleet, device, "evidence.list",
                          selection(alert, kind, limit), timeout_s=timeout_s, token=token)
    if not result.ok:
        raise OperatorError(f"{device} refused evidence.list: {result.error}")
    if result.frames:
        ChunkStore(cfg.evidence.dir).merge(device, result.frames)
    return result


def format_frames(device: str, frames: Sequence[EvidenceFrame], chunks: ChunkStore,
                  more: bool = False) -> str:
    """A terminal table of listed frames, with what the collector already holds."""
    if not frames:
        return f"{device}: no evidence frames"
    header = ["frame", "captured (UTC)", "time", "triggers", "bytes", "at collector"]
    rows = [header]
    missing = chunks.missing(device, frames)
    for f in frames:
        trig = ", ".join(
            f"{t.kind}:{t.rule}:{t.phase}:{t.alert_id}" if t.kind == "alert" else t.kind
            for t in f.triggers)
        here = sum(1 for x in f.files if x.name not in missing)
        rows.append([f.id, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(f.captured)),
                     "-" if f.time is None else f"{f.time:.1f}", trig,
                     str(sum(x.bytes for x in f.files)), f"{here}/{len(f.files)} files"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [" ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    foot = f"{len(frames)} frames" + (" (more match: raise --limit)" if more else "")
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:], foot])
