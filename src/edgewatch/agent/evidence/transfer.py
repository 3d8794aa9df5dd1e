"""Sending evidence frames to the fleet when asked: the ``evidence.list`` and ``evidence.send``
commands, and the chunks the publisher sends on ``<root>/<fleet>/<device>/evidence``.

- ``evidence.list`` selects frames from the store's index (``alert``: an alert's id,
  ``kind``: a trigger kind, ``ids``: frame ids; at most ``limit``, newest kept) and answers
  with each frame's triggers and files (name, bytes, sha256, chunks).
- ``evidence.send`` answers the same way and queues the chunks of the selected files
  (``files``: ``<name>`` or ``<name>:<ranges>`` such as ``1796...-9278.jpg:0-2,5`` to send only
  some chunks: the collector's resume).

Chunks are the lowest priority of the device: the publisher asks :meth:`EvidenceSender.next`
for one only when its outbox has nothing to publish and nothing in flight, keeps at most
:data:`IN_FLIGHT` chunks unacknowledged, and this class spends a byte token bucket of
``evidence.send_kib_per_s`` (bursts of one chunk). A summary or an alert that arrives during
a transfer therefore waits at most for the chunks already in flight. Nothing of a transfer is
durable on the device: the frames are (the store), and the collector knows which chunks it
has. A disconnect drops the queued chunks (:meth:`reset`); the next ``edgewatch evidence
pull`` asks for the missing ones only.

Everything here runs on the publisher's thread (commands arrive in its network loop); the
index is read through a read-only SQLite connection of its own (WAL), beside the capture
thread's.
"""

from __future__ import annotations

import collections
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgewatch.agent.commands import CommandError, CommandRouter
from edgewatch.contracts.digest import sha256
from edgewatch.contracts.evidence import MAX_FRAMES, EvidenceChunk

log = logging.getLogger(__name__)

IN_FLIGHT = 2
"""Chunks published and not yet acknowledged at most."""
MAX_QUEUED = 100_000
"""Chunks queued at most (a larger request is refused)."""
DEFAULT_LIMIT = 200


class ByteBucket:
    """At most ``rate`` bytes a second, bursts of ``burst`` bytes; starts full."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self, n: int) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False


def parse_ranges(text: str, count: int) -> list[int]:
    """Chunk numbers of ``"0-2,5"`` below ``count``; CommandError when malformed."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise CommandError(f"bad chunk range {part[:40]!r} (expected N or N-M)") from None
        if a < 0 or b < a:
            raise CommandError(f"bad chunk range {part[:40]!r}")
        out.update(range(a, min(b, count - 1) + 1))
    return sorted(out)


def format_ranges(indices: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` as ``"0-2,5"``."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(set(indices)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


class EvidenceSender:
    """The device's side of evidence retrieval (see the module doc)."""

    def __init__(self, root: str | Path, device: str, *, chunk_bytes: int,
                 bytes_per_s: float) -> None:
        self.root = Path(root)
        self.device = device
        self.chunk_bytes = chunk_bytes
        self.bucket = ByteBucket(bytes_per_s, chunk_bytes)
        self._lock = threading.Lock()
        self._jobs: collections.deque[tuple[str, str, int]] = collections.deque()
        """(frame id, file name, chunk index), in order."""
        self._queued: set[tuple[str, str, int]] = set()
        self._paths: dict[tuple[str, str], Path] = {}
        self._file: tuple[Path, bytes, str] | None = None
        """The file being sent: its path, bytes and sha256 (read once for its chunks)."""
        self.sent = 0
        """Chunks acknowledged by the broker."""
        self.sent_bytes = 0
        self.dropped = 0
        """Chunks dropped by a disconnect or because their file was gone (evicted)."""

    def register(self, router: CommandRouter) -> None:
        router.register("evidence.list", self.list_command)
        router.register("evidence.send", self.send_command)

    # -- commands --------------------------------------------------------------------------

    def _select(self, args: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        """Index rows and their triggers of the selected frames, and whether there are more."""
        limit = args.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_FRAMES:
            raise CommandError(f"'limit' must be an integer from 1 to {MAX_FRAMES}")
        where: list[str] = []
        params: list[Any] = []
        for key, column in (("alert", "t.alert_id"), ("kind", "t.kind")):
            value = args.get(key)
            if value is not None:
                if not isinstance(value, str) or not value:
                    raise CommandError(f"'{key}' must be a non-empty string")
                where.append(f"{column} = ?")
                params.append(value)
        ids = self._ids(args)
        if ids:
            where.append(f"f.id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        sql = ("SELECT DISTINCT f.id, f.captured, f.time, f.image, f.sidecar FROM frames f "
               "LEFT JOIN triggers t ON t.frame_id = f.id")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY f.captured DESC, f.id DESC LIMIT ?"
        index = self.root / "index.sqlite"
        if not index.exists():
            return [], False
        db = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = db.execute(sql, [*params, limit + 1]).fetchall()
            more = len(rows) > limit
            rows = sorted(rows[:limit], key=lambda r: (r[1], r[0]))
            frames = []
            for frame_id, captured, t, image, sidecar in rows:
                trig = db.execute("SELECT kind, alert_id, rule, phase FROM triggers WHERE "
                                  "frame_id = ? ORDER BY rowid", (frame_id,)).fetchall()
                frames.append({"id": frame_id, "captured": captured, "time": t,
                               "paths": [self.root / image, self.root / sidecar],
                               "triggers": [{"kind": k, "alert_id": a, "rule": r, "phase": p}
                                            for k, a, r, p in trig]})
        finally:
            db.close()
        return frames, more

    @staticmethod
    def _ids(args: dict[str, Any]) -> list[str]:
        ids = args.get("ids")
        if ids is None:
            return []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise CommandError("'ids' must be a list of frame ids")
        return ids

    def _describe(self, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for f in frames:
            files = []
            for path in f.pop("paths"):
                try:
                    data = path.read_bytes()
                except OSError:  # evicted meanwhile
                    continue
                self._paths[(f["id"], path.name)] = path
                files.append({"name": path.name, "bytes": len(data),
                              "sha256": sha256(data).hexdigest(),
                              "chunks": max(1, math.ceil(len(data) / self.chunk_bytes))})
            if files:
                out.append({**f, "files": files,
                            "time": f["time"] if f["time"] is not None else None})
        return out

    def list_command(self, args: dict[str, Any]) -> dict[str, Any]:
        frames, more = self._select(args)
        return {"frames": self._describe(frames), "more": more,
                "chunk_bytes": self.chunk_bytes}

    def send_command(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted = self._wanted(args.get("files"))
        if wanted:
            args = {**args, "ids": sorted({name.rsplit(".", 1)[0] for name in wanted})}
        frames, more = self._select(args)
        described = self._describe(frames)
        jobs: list[tuple[str, str, int]] = []
        for f in described:
            for file in f["files"]:
                if wanted and file["name"] not in wanted:
                    continue
                spec = wanted.get(file["name"]) if wanted else None
                indices = (parse_ranges(spec, file["chunks"]) if spec
                           else range(file["chunks"]))
                jobs += [(f["id"], file["name"], i) for i in indices]
        with self._lock:
            if len(self._jobs) + len(jobs) > MAX_QUEUED:
                raise CommandError(f"more than {MAX_QUEUED} chunks queued: ask for less")
            added = 0
            for job in jobs:
                if job not in self._queued:
                    self._queued.add(job)
                    self._jobs.append(job)
                    added += 1
        log.info("evidence: sending %d chunks of %d frames", added, len(described))
        return {"frames": described, "more": more, "chunks": added,
                "chunk_bytes": self.chunk_bytes}

    @staticmethod
    def _wanted(files: Any) -> dict[str, str]:
        """``files`` as {name: ranges or ""}."""
        if files is None:
            return {}
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise CommandError("'files' must be a list of '<name>' or '<name>:<ranges>'")
        out: dict[str, str] = {}
        for item in files:
            name, _, ranges = item.partition(":")
            out[name] = ",".join(x for x in (out.get(name, ""), ranges) if x)
        return out

    # -- the publisher ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._jobs)

    def next(self) -> EvidenceChunk | None:
        """The next chunk to publish, or None (nothing queued, or over the rate)."""
        with self._lock:
            while self._jobs:
                frame, name, index = self._jobs[0]
                loaded = self._load(frame, name)
                if loaded is None:
                    self._jobs.popleft()
                    self._queued.discard((frame, name, index))
                    self.dropped += 1
                    continue
                data, sha = loaded
                count = max(1, math.ceil(len(data) / self.chunk_bytes))
                part = data[index * self.chunk_bytes:(index + 1) * self.chunk_bytes]
                if index >= count:
                    self._jobs.popleft()
                    self._queued.discard((frame, name, index))
                    continue
                if not self.bucket.take(max(len(part), 1)):
                    return None
                self._jobs.popleft()
                self._queued.discard((frame, name, index))
                return EvidenceChunk(frame=frame, file=name, index=index, count=count,
                                     size=len(data), sha256=sha, data=part, device=self.device)
        return None

    def _load(self, frame: str, name: str) -> tuple[bytes, str] | None:
        path = self._paths.get((frame, name))
        if path is None:
            return None
        if self._file is not None and self._file[0] == path:
            return self._file[1], self._file[2]
        try:
            data = path.read_bytes()
        except OSError:
            log.info("evidence: %s is gone (evicted), not sent", name)
            return None
        self._file = (path, data, sha256(data).hexdigest())
        return data, self._file[2]

    def acked(self, chunk: EvidenceChunk, ok: bool) -> None:
        """The broker acknowledged a chunk (``ok``) or refused it."""
        if ok:
            self.sent += 1
            self.sent_bytes += len(chunk.data)
        else:
            self.dropped += 1

    def reset(self) -> int:
        """The connection is gone: drop what is queued (the collector asks again for what it
        misses); how many chunks were dropped."""
        with self._lock:
            n = len(self._jobs)
            self._jobs.clear()
            self._queued.clear()
            self._file = None
        if n:
            self.dropped += n
            log.info("evidence: %d chunks not sent (disconnected); the next pull asks again", n)
        return n
