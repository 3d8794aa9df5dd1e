"""The evidence store on disk: one JPEG and one JSON sidecar per frame, an SQLite index.

Layout under ``evidence.path``::

    index.sqlite                     frames and their triggers (rebuilt from the sidecars)
    frames/<YYYY-MM-DD>/<id>.jpg     the image (redacted when redaction is on)
    frames/<YYYY-MM-DD>/<id>.json    the sidecar (schema ``edgewatch.evidence/1``)

Writes are atomic: the image, then the sidecar, each written to ``<name>.tmp``, flushed to
disk and renamed. The sidecar's rename is the commit: a frame exists when its sidecar does.
The index is updated after that; on open, ``reconcile`` removes temporary files, images
without a sidecar and index rows without one, and indexes sidecars the index misses, so a
SIGKILL at any point leaves a consistent store. Beyond ``max_bytes`` (images plus
sidecars) the frames captured first are evicted first. A write is refused when the
filesystem would be left with less than ``reserve_bytes`` free.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA = "edgewatch.evidence/1"
_TABLES = """
CREATE TABLE IF NOT EXISTS frames (
    id TEXT PRIMARY KEY, captured REAL NOT NULL, time REAL, frame_index INTEGER,
    window_start REAL, window_end REAL, image TEXT NOT NULL, sidecar TEXT NOT NULL,
    bytes INTEGER NOT NULL, redacted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS frames_captured ON frames (captured);
CREATE TABLE IF NOT EXISTS triggers (
    frame_id TEXT NOT NULL REFERENCES frames (id) ON DELETE CASCADE,
    kind TEXT NOT NULL, alert_id TEXT NOT NULL DEFAULT '', rule TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT '', UNIQUE (frame_id, kind, alert_id));
CREATE INDEX IF NOT EXISTS triggers_alert ON triggers (alert_id);
CREATE INDEX IF NOT EXISTS triggers_kind ON triggers (kind);
"""


class StoreRefused(Exception):
    """A frame was not written: ``reason`` is ``too_big`` or ``no_space``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class EvidenceStore:
    """Frames written atomically, indexed by trigger and alert, evicted oldest first."""

    def __init__(self, path: str | Path, max_bytes: int, reserve_bytes: int = 0) -> None:
        self.root = Path(path)
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.frames_dir = self.root / "frames"
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "index.sqlite", check_same_thread=False,
                                  isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_TABLES)
        self.evicted = 0
        self.reconcile()

    # -- writing ------------------------------------------------------------------------

    def write(self, sidecar: dict[str, Any], jpeg: bytes) -> int:
        """Write one frame (its sidecar names it: ``id``, ``captured``); the bytes written.

        Raises StoreRefused when the frame alone exceeds the budget or the disk would be
        left with less than the reserve; evicts the oldest frames beyond the budget."""
        frame_id = str(sidecar["id"])
        day = time.strftime("%Y-%m-%d", time.gmtime(float(sidecar["captured"])))
        folder = self.frames_dir / day
        image = folder / f"{frame_id}.jpg"
        side = folder / f"{frame_id}.json"
        sidecar = {**sidecar, "schema": SCHEMA, "image": image.name}
        text = json.dumps(sidecar, separators=(",", ":"), allow_nan=False).encode()
        size = len(jpeg) + len(text)
        if size > self.max_bytes:
            raise StoreRefused("too_big")
        folder.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(folder).free - size < self.reserve_bytes:
            raise StoreRefused("no_space")
        _write_atomic(image, jpeg)
        _write_atomic(side, text)  # the commit
        self._index(sidecar, image, side, size)
        self.evict()
        return size

    def add_trigger(self, frame_id: str, trig: dict[str, Any]) -> bool:
        """Record one more trigger on a stored frame (its sidecar is rewritten atomically);
        False when the frame is gone (evicted)."""
        row = self.db.execute("SELECT sidecar FROM frames WHERE id = ?", (frame_id,)).fetchone()
        if row is None:
            return False
        side = self.root / row[0]
        try:
            sidecar = json.loads(side.read_bytes())
        except (OSError, ValueError):
            return False
        if trig in sidecar["triggers"]:
            return True
        sidecar["triggers"].append(trig)
        text = json.dumps(sidecar, separators=(",", ":"), allow_nan=False).encode()
        _write_atomic(side, text)
        self._insert_trigger(frame_id, trig)
        return True

    def _index(self, sidecar: dict[str, Any], image: Path, side: Path, size: int) -> None:
        window = sidecar.get("window") or {}
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sidecar["id"], sidecar["captured"], sidecar.get("time"),
                 sidecar.get("frame_index"), window.get("start"), window.get("end"),
                 str(image.relative_to(self.root)), str(side.relative_to(self.root)), size,
                 int(bool(sidecar.get("redacted")))))
            for trig in sidecar.get("triggers", []):
                self._insert_trigger(sidecar["id"], trig)

    def _insert_trigger(self, frame_id: str, trig: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO triggers VALUES (?, ?, ?, ?, ?)",
            (frame_id, trig["kind"], trig.get("alert_id", ""), trig.get("rule", ""),
             trig.get("phase", "")))

    # -- budget -------------------------------------------------------------------------

    @property
    def total_bytes(self) -> int:
        row = self.db.execute("SELECT COALESCE(SUM(bytes), 0) FROM frames").fetchone()
        return int(row[0])

    def evict(self) -> int:
        """Delete the frames captured first until the store fits its budget."""
        n = 0
        total = self.total_bytes
        while total > self.max_bytes:
            row = self.db.execute(
                "SELECT id, image, sidecar, bytes FROM frames ORDER BY captured, id LIMIT 1"
            ).fetchone()
            if row is None:
                break
            self._delete(*row[:3])
            total -= row[3]
            n += 1
        self.evicted += n
        return n

    def _delete(self, frame_id: str, image: str, sidecar: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / sidecar).unlink()  # uncommit first
        with contextlib.suppress(FileNotFoundError):
            (self.root / image).unlink()
        self.db.execute("DELETE FROM frames WHERE id = ?", (frame_id,))

    # -- recovery -----------------------------------------------------------------------

    def reconcile(self) -> dict[str, int]:
        """Make the files and the index agree after a crash (see the module doc)."""
        fixed = {"tmp": 0, "orphan_images": 0, "stale_rows": 0, "indexed": 0}
        sidecars: dict[str, Path] = {}
        for path in sorted(self.frames_dir.glob("*/*")):
            if path.name.endswith(".tmp"):
                path.unlink()
                fixed["tmp"] += 1
            elif path.suffix == ".json":
                sidecars[path.stem] = path
        for path in sorted(self.frames_dir.glob("*/*.jpg")):
            if path.stem not in sidecars:
                path.unlink()
                fixed["orphan_images"] += 1
        for frame_id, side in list(sidecars.items()):
            if not side.with_suffix(".jpg").exists():  # an image lost after its commit
                side.unlink()
                del sidecars[frame_id]
        rows = {r[0] for r in self.db.execute("SELECT id FROM frames")}
        for frame_id in rows - sidecars.keys():
            self.db.execute("DELETE FROM frames WHERE id = ?", (frame_id,))
            fixed["stale_rows"] += 1
        for frame_id in sorted(sidecars.keys() - rows):
            side = sidecars[frame_id]
            try:
                sidecar = json.loads(side.read_bytes())
            except ValueError:  # cannot happen with atomic renames; drop it anyway
                side.unlink()
                side.with_suffix(".jpg").unlink()
                continue
            size = side.stat().st_size + side.with_suffix(".jpg").stat().st_size
            self._index(sidecar, side.with_suffix(".jpg"), side, size)
            fixed["indexed"] += 1
        self.evict()
        return fixed

    # -- reading ------------------------------------------------------------------------

    def frames(self, *, alert_id: str | None = None, kind: str | None = None,
               since: float | None = None) -> list[dict[str, Any]]:
        """Index rows (id, captured, time, image, sidecar, bytes, ...), captured order;
        filtered by an alert's id, a trigger kind, a capture time."""
        sql = "SELECT DISTINCT f.* FROM frames f LEFT JOIN triggers t ON t.frame_id = f.id"
        where: list[str] = []
        args: list[Any] = []
        if alert_id is not None:
            where.append("t.alert_id = ?")
            args.append(alert_id)
        if kind is not None:
            where.append("t.kind = ?")
            args.append(kind)
        if since is not None:
            where.append("f.captured >= ?")
            args.append(since)
        if where:
            sql += " WHERE " + " AND ".join(where)
        cur = self.db.execute(sql + " ORDER BY f.captured, f.id", args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def sidecar(self, frame_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT sidecar FROM frames WHERE id = ?", (frame_id,)).fetchone()
        if row is None:
            raise KeyError(frame_id)
        out: dict[str, Any] = json.loads((self.root / row[0]).read_bytes())
        return out

    def close(self) -> None:
        self.db.close()
