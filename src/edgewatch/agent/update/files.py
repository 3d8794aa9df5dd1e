"""The versioned model directory (``update.models_dir``) and the lifecycle's state file.

Layout::

    <models_dir>/versions/<version>/model.onnx   a committed model (+ reference.json, labels.txt)
    <models_dir>/current.json                    which version runs, and the previous one
    <models_dir>/state.json                      the update lifecycle's state

Every JSON file is written whole to a temporary file, fsynced, renamed over the old one and
the directory fsynced: a SIGKILL or a power loss leaves the old file or the new one, never a
torn one. A version directory is filled under ``<version>.partial`` and renamed into place,
so a version that exists is complete; ``current.json`` also records each file's sha256,
checked before a version is run (``active_model``).

``current.json`` is the one switch: it names the version the agent runs at its next start
(and the running agent swaps to between two frames). Without it, or when the version it
names is missing or damaged, the agent runs ``model.path`` (the base model the device was
installed with), which stays in place and is never overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from edgewatch.agent.inference.engine import file_sha256
from edgewatch.config.agent import AgentConfig

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
REFERENCE_FILE = "reference.json"
LABELS_FILE = "labels.txt"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON in ``path``: temporary file, fsync, rename, directory fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when missing or unreadable (logged)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("update: cannot read %s (%s): ignored", path, exc)
        return None
    return data if isinstance(data, dict) else None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_synced(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as fh:
        os.fsync(fh.fileno())


@dataclasses.dataclass(frozen=True)
class Version:
    """One committed model: its directory and the sha256 of each of its files."""

    name: str
    directory: Path
    files: dict[str, str]
    """File name -> sha256."""

    @property
    def model(self) -> Path:
        return self.directory / MODEL_FILE

    def optional(self, name: str) -> Path | None:
        return self.directory / name if name in self.files else None

    def intact(self) -> str | None:
        """None when every file is there with its sha256, else what is wrong."""
        for name, digest in self.files.items():
            path = self.directory / name
            if not path.is_file():
                return f"{path} is missing"
            if file_sha256(path) != digest:
                return f"{path} does not match its sha256"
        return None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "files": dict(self.files)}


class ModelStore:
    """``update.models_dir``: the versions, ``current.json`` and ``state.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.current_file = self.root / "current.json"
        self.state_file = self.root / "state.json"

    def version(self, data: dict[str, Any] | None) -> Version | None:
        if not data or not isinstance(data.get("name"), str) or not isinstance(
                data.get("files"), dict):
            return None
        return Version(data["name"], self.versions / data["name"], dict(data["files"]))

    def current(self) -> tuple[Version | None, Version | None]:
        """The version current.json names and the previous one (None: the base model)."""
        data = read_json(self.current_file) or {}
        return self.version(data.get("current")), self.version(data.get("previous"))

    def set_current(self, current: Version | None, previous: Version | None) -> None:
        """The switch: from now on (and at the next start) ``current`` runs (None: the
        base model, ``model.path``)."""
        write_json_atomic(self.current_file, {
            "current": current.to_json() if current else None,
            "previous": previous.to_json() if previous else None,
        })

    def install(self, name: str, model: Path, reference: Path | None = None,
                labels: Path | None = None) -> Version:
        """Copy the files into ``versions/<name>.partial``, fsync, rename to
        ``versions/<name>``: the version exists complete or not at all."""
        self.versions.mkdir(parents=True, exist_ok=True)
        final = self.versions / name
        partial = self.versions / f"{name}.partial"
        for stale in (partial, final):
            if stale.exists():
                shutil.rmtree(stale)
        partial.mkdir()
        files = {}
        for src, dst in ((model, MODEL_FILE), (reference, REFERENCE_FILE),
                         (labels, LABELS_FILE)):
            if src is not None:
                _copy_synced(Path(src), partial / dst)
                files[dst] = file_sha256(partial / dst)
        fsync_dir(partial)
        os.replace(partial, final)
        fsync_dir(self.versions)
        return Version(name, final, files)

    def prune(self, keep: set[str]) -> None:
        """Remove version directories (and partial ones) not in ``keep``."""
        if not self.versions.is_dir():
            return
        for path in self.versions.iterdir():
            if path.is_dir() and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def next_name(self, sha256: str) -> str:
        taken = [p.name for p in self.versions.iterdir()] if self.versions.is_dir() else []
        numbers = [int(n.split("-", 1)[0]) for n in taken if n.split("-", 1)[0].isdigit()]
        return f"{max(numbers, default=0) + 1:04d}-{sha256[:12]}"


def apply_version(cfg: AgentConfig, version: Version | None) -> AgentConfig:
    """``cfg`` running ``version`` (None: unchanged, the base model): its model file, and its
    reference and labels when it carries them."""
    if version is None:
        return cfg
    model = dataclasses.replace(cfg.model, path=str(version.model))
    labels = version.optional(LABELS_FILE)
    if labels is not None:
        model = dataclasses.replace(model, labels=str(labels))
    out = dataclasses.replace(cfg, model=model)
    reference = version.optional(REFERENCE_FILE)
    if reference is not None:
        out = dataclasses.replace(out, reference=dataclasses.replace(cfg.reference,
                                                                     path=str(reference)))
    return out


def active_model(cfg: AgentConfig) -> AgentConfig:
    """The configuration the agent starts with: the version ``current.json`` names when it
    is intact; otherwise (a crash between the copy and the switch cannot cause it, a damaged
    disk can) the previous version or the base model, and ``current.json`` says so."""
    store = ModelStore(cfg.update.models_dir)
    current, previous = store.current()
    if current is None:
        return cfg
    wrong = current.intact()
    if wrong is None:
        log.info("model: version %s from %s (update.models_dir)", current.name, store.root)
        return apply_version(cfg, current)
    log.error("model: committed version %s is damaged (%s): back to %s", current.name,
              wrong, previous.name if previous else f"the base model {cfg.model.path}")
    if previous is not None and previous.intact() is not None:
        previous = None
    store.set_current(previous, None)
    state = read_json(store.state_file)
    if state and state.get("version") == current.name and state.get("state") not in (
            "rolled_back", "rejected"):
        state.update(state="rolled_back", reason=f"committed files incomplete: {wrong}")
        write_json_atomic(store.state_file, state)
    return apply_version(cfg, previous)
