"""Receiving a pushed model update (docs/updates.md, "Push"): the ``model.push`` command and
the chunks published on ``<root>/<fleet>/<device>/update/<update id>``.

``model.push`` carries the manifest (:class:`~edgewatch.contracts.model_transfer.ModelManifest`:
update id, chunk size, each file's role, name, bytes and sha256). The first one of an update
checks its size (``update.max_model_mb``) and the free disk space, discards other unfinished
updates, and opens ``<staging_dir>/<update id>/``; every one answers with the progress
(``update_state``, ``received`` of ``chunks``, the ``missing`` chunks as ``<file>:<ranges>``),
which is what the operator's push sends next.

On disk, per update::

    manifest.json       the manifest (written first, atomically)
    <name>.part         the file being received: chunk i at i * chunk_bytes
    <name>.have         one byte per chunk, 1 when the chunk is in .part (atomic rename)
    <name>              the file, complete and verified (renamed from .part)
    rejected.txt        why the update was refused (a sha256 or signature mismatch)
    handed              the update lifecycle has been given the staged update

A chunk is written to ``.part`` before ``.have`` records it, and ``.have`` is replaced
atomically after an fsync of ``.part`` (every :data:`PERSIST_EVERY` chunks and at the end of a
file): a SIGKILL or a power cut loses at most the chunks since, which the next ``model.push``
lists as missing. Nothing here writes outside the staging directory; the running model is
never touched. When every chunk of a file is in, its sha256 is checked: a mismatch discards
the file and rejects the update (the next ``model.push`` answers the reason and starts over).
When every file is verified (and the signature, with ``update.public_key``), ``on_staged`` gets
a :class:`~edgewatch.agent.update.staged.StagedUpdate` once; the ``handed`` mark is written
after it returns, so a crash in between hands it again on the next start (at least once: the
lifecycle keys on the update id).

Commands and chunks arrive on the publisher's network thread; a lock guards the state anyway.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from edgewatch.agent.commands import CommandError, CommandRouter
from edgewatch.agent.update.incoming import IncomingUpdate, write_atomic
from edgewatch.agent.update.staged import StagedUpdate
from edgewatch.config.agent import AgentConfig
from edgewatch.contracts import codec
from edgewatch.contracts.digest import sha256
from edgewatch.contracts.model_transfer import ModelChunk, ModelFile, ModelManifest
from edgewatch.errors import ConfigError

log = logging.getLogger(__name__)

PERSIST_EVERY = 16
"""Chunks written between two fsyncs of a ``.part`` file and its ``.have`` map."""
MANIFEST = "manifest.json"
REJECTED = "rejected.txt"
HANDED = "handed"

Verifier = Callable[[Path, bytes], bool]
"""(the model file, its signature) -> whether the configured public key verifies it."""


def load_verifier(public_key: str | Path) -> Verifier:
    """An Ed25519 verifier of ``public_key`` (a PEM file, or the raw 32 bytes), from the
    ``cryptography`` package; ConfigError when it is not installed or the key is bad."""
    try:
        ed = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ed25519")
        ser = importlib.import_module("cryptography.hazmat.primitives.serialization")
        exceptions = importlib.import_module("cryptography.exceptions")
    except ImportError:
        raise ConfigError("update.public_key: signature checks need the 'cryptography' "
                          "package (pip install cryptography), or leave the key empty") from None
    try:
        raw = Path(public_key).read_bytes()
        key = (ser.load_pem_public_key(raw) if raw.lstrip().startswith(b"-----")
               else ed.Ed25519PublicKey.from_public_bytes(raw))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"update.public_key: cannot load {public_key} ({exc})") from exc
    if not isinstance(key, ed.Ed25519PublicKey):
        raise ConfigError(f"update.public_key: {public_key} is not an Ed25519 public key")

    def verify(model: Path, signature: bytes) -> bool:
        try:
            key.verify(signature, model.read_bytes())
        except exceptions.InvalidSignature:
            return False
        return True

    return verify


def file_sha256(path: Path) -> str:
    h = sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UpdateReceiver:
    """The device's side of ``edgewatch model push`` (module doc)."""

    def __init__(self, staging_dir: str | Path, device: str, *,
                 on_staged: Callable[[StagedUpdate], None], max_bytes: int,
                 reserve_bytes: int = 0, verifier: Verifier | None = None) -> None:
        self.root = Path(staging_dir)
        self.device = device
        self.on_staged = on_staged
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.verifier = verifier
        self._lock = threading.Lock()
        self._current: IncomingUpdate | None = None
        self.chunks_written = 0
        self.chunks_ignored = 0
        self.root.mkdir(parents=True, exist_ok=True)

    def register(self, router: CommandRouter) -> None:
        router.register("model.push", self.push_command)

    # -- start-up --------------------------------------------------------------------------

    def recover(self) -> None:
        """After a restart: resume the newest unfinished update, hand over a staged one that
        was not handed (a crash in between), clear leftovers of atomic writes."""
        with self._lock:
            dirs = sorted((d for d in self.root.iterdir() if d.is_dir()),
                          key=lambda d: d.stat().st_mtime)
            for d in dirs:
                for tmp in d.glob("*.tmp"):
                    tmp.unlink(missing_ok=True)
                manifest = self._read_manifest(d)
                if manifest is None or (d / REJECTED).exists() or (d / HANDED).exists():
                    continue
                incoming = IncomingUpdate(d, manifest)
                if len(incoming.done) == len(manifest.files):
                    self._finish(incoming)
                else:
                    if self._current is not None:
                        self._current.close()
                    self._current = incoming
            if self._current is not None:
                got, total = self._current.counts()
                log.info("update %s: resuming, %d of %d chunks here",
                         self._current.manifest.update, got, total)

    @staticmethod
    def _read_manifest(d: Path) -> ModelManifest | None:
        try:
            return msgspec.json.decode((d / MANIFEST).read_bytes(), type=ModelManifest)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError, ValueError):
            return None

    # -- the command -----------------------------------------------------------------------

    def push_command(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            manifest = ModelManifest.from_args(args)
        except ValueError as exc:
            raise CommandError(f"model.push: {exc}") from None
        with self._lock:
            d = self.root / manifest.update
            rejected = d / REJECTED
            if rejected.exists():
                reason = rejected.read_text(errors="replace").strip()
                self._discard(d)
                raise CommandError(f"update {manifest.update} rejected: {reason}; "
                                   "push again to start over")
            known = self._read_manifest(d)
            if known is not None and known != manifest:
                raise CommandError(f"update {manifest.update} is already being received with "
                                   "other files: push under a new update id")
            if known is None:
                self._open(d, manifest)
            elif self._current is None or self._current.dir != d:
                if self._current is not None:
                    self._current.close()
                self._current = IncomingUpdate(d, manifest)
            incoming = self._current
            assert incoming is not None
            if len(incoming.done) == len(manifest.files) and not (d / HANDED).exists():
                self._finish(incoming)
                if rejected.exists():
                    reason = rejected.read_text(errors="replace").strip()
                    self._discard(d)
                    raise CommandError(f"update {manifest.update} rejected: {reason}")
            got, total = incoming.counts()
            staged = (d / HANDED).exists()
            return {"update": manifest.update, "update_state": "staged" if staged else
                    "receiving", "chunks": total, "received": got,
                    "chunk_bytes": manifest.chunk_bytes,
                    "missing": [] if staged else incoming.missing()}

    def _open(self, d: Path, manifest: ModelManifest) -> None:
        total = manifest.total_bytes
        if total > self.max_bytes:
            raise CommandError(f"update {manifest.update}: {total / 2**20:.1f} MiB is more than "
                               f"update.max_model_mb ({self.max_bytes / 2**20:g} MiB)")
        free = shutil.disk_usage(self.root).free
        if free < total + self.reserve_bytes:
            raise CommandError(
                f"update {manifest.update}: not enough disk space in {self.root} "
                f"({free / 2**20:.1f} MiB free, {total / 2**20:.1f} MiB needed plus "
                f"{self.reserve_bytes / 2**20:.0f} MiB kept for the outbox)")
        for other in self.root.iterdir():  # one unfinished update at a time
            if other.is_dir() and other != d and not (other / HANDED).exists():
                log.info("update %s: abandoned for update %s", other.name, manifest.update)
                self._discard(other)
        d.mkdir(parents=True, exist_ok=True)
        write_atomic(d / MANIFEST, msgspec.json.encode(manifest))
        _fsync_dir(self.root)
        self._current = IncomingUpdate(d, manifest)
        log.info("update %s: receiving %d files, %.1f MiB", manifest.update,
                 len(manifest.files), total / 2**20)

    def _discard(self, d: Path) -> None:
        if self._current is not None and self._current.dir == d:
            self._current.close()
            self._current = None
        shutil.rmtree(d, ignore_errors=True)

    # -- chunks ----------------------------------------------------------------------------

    def chunk(self, topic: str, payload: bytes) -> None:
        """A message on ``update/<id>``: write the chunk if it belongs to the update being
        received; anything else is ignored (and counted)."""
        try:
            chunk = codec.decode_as(ModelChunk, payload)
        except codec.Rejected as exc:
            log.warning("update chunk on %s refused: %s", topic[-80:], exc)
            self.chunks_ignored += 1
            return
        with self._lock:
            if not self._accept(topic, chunk):
                self.chunks_ignored += 1
                return
            cur = self._current
            assert cur is not None
            file = cur.manifest.file(chunk.file)
            assert file is not None
            os.pwrite(cur.fd(file.name), chunk.data, chunk.index * cur.manifest.chunk_bytes)
            bits = cur.have[file.name]
            bits[chunk.index] = 1
            self.chunks_written += 1
            cur.dirty[file.name] = cur.dirty.get(file.name, 0) + 1
            if all(bits):
                cur.persist(file.name)
                self._verify(cur, file)
                if len(cur.done) == len(cur.manifest.files):
                    self._finish(cur)
            elif cur.dirty[file.name] >= PERSIST_EVERY:
                cur.persist(file.name)

    def _accept(self, topic: str, chunk: ModelChunk) -> bool:
        cur = self._current
        if cur is None or chunk.update != cur.manifest.update or \
                not topic.endswith("/" + chunk.update):
            return False
        file = cur.manifest.file(chunk.file)
        if file is None or file.name in cur.done:
            return False
        if chunk.sha256 and chunk.sha256 != file.sha256:
            return False
        n = cur.manifest.chunks(file)
        if chunk.index >= n or cur.have[file.name][chunk.index]:
            return False
        size = cur.manifest.chunk_bytes
        expected = min(size, file.bytes - chunk.index * size)
        return len(chunk.data) == max(expected, 0)

    def _verify(self, cur: IncomingUpdate, file: ModelFile) -> None:
        part = cur.dir / f"{file.name}.part"
        cur.close_file(file.name)
        os.truncate(part, file.bytes)
        got = file_sha256(part)
        if got != file.sha256:
            log.error("update %s: %s has sha256 %s, the manifest says %s: discarded",
                      cur.manifest.update, file.name, got, file.sha256)
            part.unlink(missing_ok=True)
            (cur.dir / f"{file.name}.have").unlink(missing_ok=True)
            self._reject(cur, f"{file.name}: sha256 {got[:16]}... does not match the "
                         f"manifest's {file.sha256[:16]}... (file discarded)")
            return
        os.replace(part, cur.dir / file.name)
        (cur.dir / f"{file.name}.have").unlink(missing_ok=True)
        _fsync_dir(cur.dir)
        cur.done.add(file.name)
        del cur.have[file.name]
        log.info("update %s: %s received and verified", cur.manifest.update, file.name)

    def _reject(self, cur: IncomingUpdate, reason: str) -> None:
        write_atomic(cur.dir / REJECTED, reason.encode())
        cur.close()
        if self._current is cur:
            self._current = None

    def _finish(self, cur: IncomingUpdate) -> None:
        """Every file is verified: check the signature, hand the update over once."""
        m = cur.manifest
        model = m.role("model")
        assert model is not None
        signed = False
        sig = m.role("signature")
        if self.verifier is not None:
            if sig is None:
                self._reject(cur, "no signature, and update.public_key requires one")
                return
            if not self.verifier(cur.dir / model.name, (cur.dir / sig.name).read_bytes()):
                self._reject(cur, "the model's signature does not verify with "
                             "update.public_key")
                return
            signed = True
        ref, labels = m.role("reference"), m.role("labels")
        staged = StagedUpdate(
            update_id=m.update, directory=cur.dir, model=cur.dir / model.name,
            model_sha256=model.sha256,
            reference=cur.dir / ref.name if ref is not None else None,
            labels=cur.dir / labels.name if labels is not None else None,
            signed=signed, received=time.time())
        log.info("update %s: staged in %s, handed to the update lifecycle", m.update, cur.dir)
        self.on_staged(staged)
        write_atomic(cur.dir / HANDED, b"")
        cur.close()

    def close(self) -> None:
        with self._lock:
            cur = self._current
            if cur is not None:
                for name in list(cur.have):
                    if cur.dirty.get(name):
                        cur.persist(name)
                cur.close()


def staging_dir(cfg: AgentConfig) -> Path:
    """``update.staging_dir``, or ``updates`` next to the outbox when it is empty."""
    if cfg.update.staging_dir:
        return Path(cfg.update.staging_dir)
    return Path(cfg.outbox.path).resolve().parent / "updates"


def open_receiver(cfg: AgentConfig, device: str, on_staged: Callable[[StagedUpdate], None]
                  ) -> UpdateReceiver:
    """The receiver of an agent configuration's ``[update]`` section (recovered: an update
    interrupted by a restart resumes). ConfigError when the staging directory cannot be
    made or the public key not loaded."""
    verifier = load_verifier(cfg.update.public_key) if cfg.update.public_key else None
    try:
        receiver = UpdateReceiver(staging_dir(cfg), device, on_staged=on_staged,
                                  max_bytes=int(cfg.update.max_model_mb * 2**20),
                                  reserve_bytes=int(cfg.outbox.max_mb * 2**20),
                                  verifier=verifier)
        receiver.recover()
    except OSError as exc:
        raise ConfigError(f"update.staging_dir: cannot use {staging_dir(cfg)} ({exc})") from exc
    return receiver
