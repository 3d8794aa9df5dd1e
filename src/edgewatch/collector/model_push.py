"""``edgewatch model push``: a new model (and its reference profile, labels, signature) sent
to devices through the broker (docs/updates.md, "Push").

For each device:

1. the manifest (:class:`~edgewatch.contracts.model_transfer.ModelManifest`: the update id,
   derived from the files' sha256 and the chunk size, so pushing the same files again
   resumes the same update) goes out as the ``model.push`` command; a device that is offline
   gets it queued in the collector's store and delivered on its next birth (push again
   later to send the chunks);
2. the device answers with the chunks it misses (all of them the first time);
3. exactly those chunks are published on ``<root>/<fleet>/<device>/update/<update id>``,
   QoS 1, at most ``rate_kib_per_s`` and :data:`WINDOW` unacknowledged;
4. ``model.push`` again: the device answers ``staged`` (every file verified by sha256 and
   handed to its update lifecycle), still missing chunks (sent again, while each round brings
   new ones), or ``ok: false`` with the reason it rejected the update.

A broker or network failure ends the push ``incomplete``; running it again sends only what
the device still misses (it persists what it has received).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from edgewatch.collector.command_exchange import OperatorError, send_command
from edgewatch.collector.mqtt_client import make_client
from edgewatch.collector.operations import CommandKeeper, send_or_queue
from edgewatch.collector.store import QueuedCommand
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts import codec
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.digest import sha256
from edgewatch.contracts.model_transfer import (
    DEFAULT_CHUNK_BYTES,
    MAX_FILE_BYTES,
    ModelChunk,
    ModelFile,
    ModelManifest,
)
from edgewatch.contracts.topics import Topics

log = logging.getLogger(__name__)

WINDOW = 8
"""Chunks published and not yet acknowledged by the broker at most."""
MAX_ROUNDS = 20
"""``model.push`` rounds at most (a round that brings no new chunk ends the push)."""


def _sha256(path: Path) -> str:
    h = sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_manifest(model: str | Path, reference: str | Path | None = None,
                   labels: str | Path | None = None, signature: str | Path | None = None,
                   chunk_bytes: int = DEFAULT_CHUNK_BYTES
                   ) -> tuple[ModelManifest, dict[str, Path]]:
    """The manifest of the files to push and where each file name is read from."""
    files: list[ModelFile] = []
    paths: dict[str, Path] = {}
    for role, given in (("model", model), ("reference", reference), ("labels", labels),
                        ("signature", signature)):
        if given is None or given == "":
            continue
        path = Path(given)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise OperatorError(f"--{role}: cannot read {path} ({exc})") from exc
        if size > MAX_FILE_BYTES:
            raise OperatorError(f"--{role}: {path} is larger than 2 GiB")
        name = {"model": "model", "reference": "reference", "labels": "labels",
                "signature": "model"}[role] + {"model": ".onnx", "reference": ".json",
                                               "labels": ".txt", "signature": ".sig"}[role]
        files.append(ModelFile(role=role, name=name, bytes=size,  # type: ignore[arg-type]
                               sha256=_sha256(path)))
        paths[name] = path
    draft = ModelManifest(update="draft", chunk_bytes=chunk_bytes, files=files)
    return msgspec.structs.replace(draft, update=f"u-{draft.key()[:20]}"), paths


def parse_missing(specs: Sequence[str], manifest: ModelManifest) -> list[tuple[str, int]]:
    """``["model.onnx:0-3,7", ...]`` as (file, chunk index) pairs."""
    out: list[tuple[str, int]] = []
    for spec in specs:
        name, _, ranges = spec.partition(":")
        file = manifest.file(name)
        if file is None:
            continue
        count = manifest.chunks(file)
        if not ranges:
            out += [(name, i) for i in range(count)]
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            if lo.isdigit() and (not hi or hi.isdigit()):
                out += [(name, i) for i in range(int(lo), min(int(hi or lo), count - 1) + 1)]
    return out


@dataclasses.dataclass
class PushReport:
    device: str
    fleet: str
    update: str
    state: str = "incomplete"
    """``staged``, ``incomplete``, ``queued`` or ``rejected``."""
    chunks: int = 0
    """Chunks of the whole update."""
    sent: int = 0
    """Chunks this push published (the missing ones only, when resuming)."""
    received: int = 0
    """Chunks the device reported having, at the end."""
    message: str = ""

    def text(self) -> str:
        head = f"{self.device} (fleet {self.fleet}): update {self.update}"
        if self.state == "staged":
            return (f"{head} staged: every file verified on the device ({self.sent} chunks "
                    f"sent now, {self.chunks} in all)")
        if self.state in ("queued", "rejected"):
            return f"{head} {self.state}: {self.message}"
        return (f"{head} incomplete: {self.received} of {self.chunks} chunks on the device "
                f"({self.sent} sent now){'; ' + self.message if self.message else ''}. "
                "Push again to send only the missing ones.")

    def row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ChunkSender:
    """Publishes chunks of one update to one device: QoS 1, a window of unacknowledged
    chunks, a byte rate; stops at the first failure (OperatorError)."""

    def __init__(self, cfg: CollectorMqttConfig, topics: Topics, manifest: ModelManifest,
                 paths: dict[str, Path], bytes_per_s: float) -> None:
        self.cfg, self.topics, self.manifest, self.paths = cfg, topics, manifest, paths
        self.bytes_per_s = bytes_per_s
        self._cond = threading.Condition()
        self._inflight: set[int] = set()
        self._early: set[int] = set()
        self._error = ""
        self._connected = threading.Event()
        self.client: Any = None

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            self._fail(f"the broker refused the connection: {reason}")
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self._fail(f"disconnected from the broker: {reason}")

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any = None) -> None:
        with self._cond:
            if reason.is_failure and reason.value != 0x10:
                self._error = self._error or f"the broker refused a chunk: {reason} (ACL?)"
            if mid in self._inflight:
                self._inflight.discard(mid)
            else:
                self._early.add(mid)
            self._cond.notify_all()

    def _fail(self, why: str) -> None:
        with self._cond:
            self._error = self._error or why
            self._cond.notify_all()

    def __enter__(self) -> ChunkSender:
        unique = f"edgewatch-push-{uuid.uuid4().hex[:12]}"
        client = make_client(dataclasses.replace(self.cfg, client_id=unique, protocol="5"))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        try:
            client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=True)
        except (OSError, ValueError) as exc:
            raise OperatorError(f"cannot reach the broker at {self.cfg.host}:{self.cfg.port}: "
                                f"{exc}") from exc
        client.loop_start()
        self.client = client
        if not self._connected.wait(10.0) or self._error:
            self.__exit__()
            raise OperatorError(self._error or "the broker did not answer the connection")
        return self

    def __exit__(self, *_: Any) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

    def send(self, jobs: Sequence[tuple[str, int]],
             progress: Callable[[int], None] | None = None) -> int:
        """Publish the chunks of ``jobs``; how many the broker acknowledged. OperatorError on
        a failure (after counting)."""
        size = self.manifest.chunk_bytes
        topic = self.topics.update(self.manifest.update)
        handles: dict[str, Any] = {}
        sent = 0
        started = time.monotonic()
        spent = 0
        try:
            for name, index in jobs:
                file = self.manifest.file(name)
                assert file is not None
                fh = handles.get(name)
                if fh is None:
                    fh = handles[name] = self.paths[name].open("rb")
                fh.seek(index * size)
                data = fh.read(size)
                chunk = ModelChunk(update=self.manifest.update, file=name, index=index,
                                   data=data, sha256=file.sha256, device=self.topics.device)
                payload = codec.encode(chunk, "msgpack")
                delay = started + spent / self.bytes_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                with self._cond:
                    while len(self._inflight) >= WINDOW and not self._error:
                        self._cond.wait(0.5)
                    if self._error:
                        raise OperatorError(self._error)
                info = self.client.publish(topic, payload, qos=1)
                if info.rc != 0:
                    raise OperatorError(_publish_failure(info.rc))
                spent += len(data)
                with self._cond:
                    if info.mid in self._early:
                        self._early.discard(info.mid)
                    else:
                        self._inflight.add(info.mid)
                sent += 1
                if progress is not None:
                    progress(sent)
            deadline = time.monotonic() + 30.0
            with self._cond:
                while self._inflight and not self._error and time.monotonic() < deadline:
                    self._cond.wait(0.5)
                if self._error:
                    raise OperatorError(self._error)
        finally:
            for fh in handles.values():
                fh.close()
        return sent


def push_device(mqtt_cfg: CollectorMqttConfig, store: CommandKeeper | None, fleet: str,
                device: str, manifest: ModelManifest, paths: dict[str, Path], *,
                rate_kib_per_s: float = 1024.0, timeout_s: float = 10.0, token: str = "",
                progress: Callable[[int], None] | None = None) -> PushReport:
    """Push one update to one device (module doc)."""
    report = PushReport(device, fleet, manifest.update,
                        chunks=sum(manifest.chunks(f) for f in manifest.files))
    args = manifest.to_args()
    result: CommandResult | QueuedCommand
    if store is not None:
        result = send_or_queue(mqtt_cfg, store, fleet, device, "model.push", args,
                               timeout_s=timeout_s, token=token)
    else:
        result = send_command(mqtt_cfg, fleet, device, "model.push", args, timeout_s, token)
    if isinstance(result, QueuedCommand):
        report.state = "queued"
        report.message = (f"{device} is offline; the manifest ({result.id}) is delivered when "
                          "it reconnects: push again then to send the chunks")
        return report
    topics = Topics(mqtt_cfg.topic_root, fleet, device)
    last = -1
    try:
        with ChunkSender(mqtt_cfg, topics, manifest, paths, rate_kib_per_s * 1024) as sender:
            for _ in range(MAX_ROUNDS):
                if not result.ok:
                    report.state = "rejected"
                    report.message = result.error or "refused"
                    return report
                report.received = result.received or 0
                if result.update_state == "staged":
                    report.state = "staged"
                    return report
                if report.received <= last:
                    report.message = "the device received nothing new in the last round"
                    return report
                last = report.received
                jobs = parse_missing(result.missing or [], manifest)
                report.sent += sender.send(jobs, progress)
                result = send_command(mqtt_cfg, fleet, device, "model.push", args, timeout_s,
                                      token)
    except OperatorError as exc:
        report.message = str(exc)
        log.info("push of %s to %s interrupted: %s", manifest.update, device, exc)
    return report


def push(mqtt_cfg: CollectorMqttConfig, store: CommandKeeper | None,
         targets: Sequence[tuple[str, str]], model: str | Path, *,
         reference: str | Path | None = None, labels: str | Path | None = None,
         signature: str | Path | None = None, chunk_kib: int = DEFAULT_CHUNK_BYTES // 1024,
         rate_kib_per_s: float = 1024.0, timeout_s: float = 10.0, token: str = "",
         progress: Callable[[int], None] | None = None) -> list[PushReport]:
    """Push the files to every (fleet, device) of ``targets``, one after the other."""
    manifest, paths = build_manifest(model, reference, labels, signature, chunk_kib * 1024)
    return [push_device(mqtt_cfg, store, fleet, device, manifest, paths,
                        rate_kib_per_s=rate_kib_per_s, timeout_s=timeout_s, token=token,
                        progress=progress)
            for fleet, device in targets]


def targets(store: Any, device: str | None, fleet: str | None) -> list[tuple[str, str]]:
    """(fleet, device) pairs of ``--device`` (its fleet from the store unless given) or of
    every device the store knows in ``--fleet``."""
    if device:
        if fleet:
            return [(fleet, device)]
        state = store.device(device)
        if state is None:
            raise OperatorError(f"the collector does not know device {device[:130]!r}: "
                                "give its fleet (--fleet)")
        return [(str(state.fleet), device)]
    if not fleet:
        raise OperatorError("name a device (--device) or a fleet (--fleet)")
    found = [(str(d.fleet), str(d.device)) for d in store.devices() if d.fleet == fleet]
    if not found:
        raise OperatorError(f"the collector knows no device in fleet {fleet[:130]!r}")
    return found


def _publish_failure(rc: int) -> str:
    """Why ``publish`` refused a chunk: the connection was lost (the broker went away before
    paho's network thread said so), or paho's own reason."""
    if rc == mqtt.MQTT_ERR_NO_CONN:
        return "disconnected from the broker while publishing a chunk"
    return f"publishing a chunk failed: {mqtt.error_string(rc)} (paho rc {rc})"
