"""One model update being received, on disk in its staging directory: per file, the chunks
written so far into ``<name>.part`` and the map of which are there, ``<name>.have``; what
is still missing, as the ``model.push`` answer lists it.

The layout of the staging directory and what survives a crash:
:mod:`edgewatch.agent.update.receive`.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgewatch.contracts.model_transfer import ModelManifest

MAX_SPEC = 4000
"""Longest ``<file>:<ranges>`` item of ``missing`` (contracts.bounds.Text); the rest is
listed by the next ``model.push``."""


def format_ranges(indices: list[int]) -> str:
    """Chunk indices as ranges, lowest first: 0, 1, 2 and 5 are ``0-2,5``."""
    parts: list[str] = []
    start = prev = -2
    for i in sorted(indices):
        if i == prev + 1:
            prev = i
            continue
        if start >= 0:
            parts.append(f"{start}-{prev}" if prev > start else str(start))
        start = prev = i
    if start >= 0:
        parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ",".join(parts)


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` in ``path``: written to a temporary file next to it, fsynced, renamed over
    it (the directory is not fsynced here)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class IncomingUpdate:
    """One update being received: its manifest and, per file, what is here."""

    def __init__(self, directory: Path, manifest: ModelManifest) -> None:
        self.dir = directory
        self.manifest = manifest
        self.have: dict[str, bytearray] = {}
        self.done: set[str] = set()
        self.dirty: dict[str, int] = {}
        self._fds: dict[str, int] = {}
        for f in manifest.files:
            if (directory / f.name).exists():
                self.done.add(f.name)
                continue
            n = manifest.chunks(f)
            try:
                raw = (directory / f"{f.name}.have").read_bytes()
            except OSError:
                raw = b""
            bits = bytearray(raw[:n].ljust(n, b"\0"))
            if not (directory / f"{f.name}.part").exists():
                bits = bytearray(n)
            self.have[f.name] = bits

    def fd(self, name: str) -> int:
        if name not in self._fds:
            self._fds[name] = os.open(self.dir / f"{name}.part", os.O_RDWR | os.O_CREAT, 0o644)
        return self._fds[name]

    def persist(self, name: str) -> None:
        """fsync ``.part``, then record its chunks in ``.have`` (atomically)."""
        if name in self._fds:
            os.fsync(self._fds[name])
        write_atomic(self.dir / f"{name}.have", bytes(self.have[name]))
        self.dirty[name] = 0

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def close_file(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def counts(self) -> tuple[int, int]:
        """(chunks received, chunks in all)."""
        total = sum(self.manifest.chunks(f) for f in self.manifest.files)
        got = sum(self.manifest.chunks(f) for f in self.manifest.files if f.name in self.done)
        got += sum(sum(1 for b in bits if b) for name, bits in self.have.items()
                   if name not in self.done)
        return got, total

    def missing(self) -> list[str]:
        out = []
        for f in self.manifest.files:
            if f.name in self.done:
                continue
            gaps = [i for i, b in enumerate(self.have[f.name]) if not b]
            spec = f"{f.name}:{format_ranges(gaps)}"
            if len(spec) > MAX_SPEC:
                spec = spec[:spec.rfind(",", 0, MAX_SPEC)]
            out.append(spec)
        return out
