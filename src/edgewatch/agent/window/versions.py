"""Reference versions on the device, and the ``reference.push`` command that switches them.

``reference.versions_dir`` holds every reference the device was given as ``<id>.json``
(never deleted by the agent) and ``active.json``, written atomically (a temporary file,
fsync, rename), recording per context the active reference, the previous one and who
accepted it when, plus the history of switches. At start-up the active references replace
the configured files.

``reference.push`` (arguments: ``reference``, the profile packed by
:func:`edgewatch.contracts.reference.pack_reference`; ``sha256`` of the profile's bytes;
optional ``context`` (default ``default``), ``by`` and ``note``): the profile is checked
(contract, model, adapter, analysis width), stored, recorded as active, and handed to the
monitor, which uses it from the next window with fresh drift streaks; the device then
publishes it, retained, on ``<device>/reference`` (``on_switch``), and its summaries carry
the new ``reference_id``. The answer says which reference replaced which, by whom and when,
and the collector stores it (``edgewatch reference history``).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgewatch.agent.commands import CommandError, CommandRouter
from edgewatch.agent.window.contexts import DEFAULT, ReferenceSet
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.contracts.digest import sha256
from edgewatch.contracts.reference import unpack_reference
from edgewatch.errors import ProfileError

ACTIVE = "active.json"
MAX_HISTORY = 200


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, fsync,
    rename, fsync of the directory (the rename itself survives a power cut)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class ReferenceVersions:
    """The directory of reference versions; see the module."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.lock = threading.RLock()
        """Held around a switch (``switch``): one at a time, whichever thread asks."""

    def _state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.dir / ACTIVE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"contexts": {}, "history": []}
        except (OSError, ValueError) as exc:
            raise ProfileError(f"{self.dir / ACTIVE}: unreadable ({exc})") from exc
        return state if isinstance(state, dict) else {"contexts": {}, "history": []}

    def active_id(self, context: str = DEFAULT) -> str | None:
        entry = self._state().get("contexts", {}).get(context)
        return entry.get("id") if isinstance(entry, dict) else None

    def active(self, context: str = DEFAULT) -> ReferenceProfile | None:
        """The active reference of ``context`` (None: none was ever installed)."""
        ident = self.active_id(context)
        return self.load(ident) if ident else None

    def load(self, reference_id: str) -> ReferenceProfile:
        return ReferenceProfile.load(self.dir / f"{reference_id}.json")

    def history(self) -> list[dict[str, Any]]:
        return list(self._state().get("history", []))

    def install(self, profile: ReferenceProfile, context: str = DEFAULT, *,
                previous: str | None = None, by: str = "", at: float | None = None
                ) -> dict[str, Any]:
        """Store ``profile`` (kept beside the previous ones) and record it as active."""
        self.dir.mkdir(parents=True, exist_ok=True)
        at = time.time() if at is None else at
        path = self.dir / f"{profile.id}.json"
        if not path.exists():
            atomic_write(path, (json.dumps(profile.to_dict(), indent=1) + "\n").encode())
        state = self._state()
        contexts = state.setdefault("contexts", {})
        old = contexts.get(context, {})
        previous = previous or (old.get("id") if isinstance(old, dict) else None)
        entry = {"id": profile.id, "previous": previous, "by": by, "at": at}
        contexts[context] = entry
        state["history"] = [*state.get("history", []), {"context": context, **entry}
                            ][-MAX_HISTORY:]
        atomic_write(self.dir / ACTIVE, (json.dumps(state, indent=1) + "\n").encode())
        return entry


class ReferencePush:
    """The ``reference.push`` command handler; see the module."""

    def __init__(self, versions: ReferenceVersions, references: ReferenceSet, *,
                 on_switch: Callable[[str, ReferenceProfile], None] | None = None) -> None:
        self.versions = versions
        self.references = references
        self.on_switch = on_switch

    def register(self, router: CommandRouter) -> None:
        router.register("reference.push", self)

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        chunks = args.get("reference")
        if isinstance(chunks, str):
            chunks = [chunks]
        if not isinstance(chunks, list) or not chunks \
                or not all(isinstance(c, str) for c in chunks):
            raise CommandError("'reference' (the packed profile: a list of strings) is "
                               "required")
        context = str(args.get("context") or DEFAULT)
        if context not in self.references.contexts:
            raise CommandError(f"unknown reference context {context!r} (known: "
                               f"{', '.join(self.references.contexts)})")
        try:
            raw = unpack_reference(chunks)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        digest = str(args.get("sha256", ""))
        if digest and sha256(raw).hexdigest() != digest:
            raise CommandError("reference payload damaged: sha256 differs")
        try:
            profile = ReferenceProfile.from_dict(json.loads(raw))
            current = self.references.profile(context)
            profile.check_compatible(current.model_sha256, current.adapter,
                                     current.analysis_width)
        except (ValueError, ProfileError) as exc:
            raise CommandError(f"reference refused: {exc}") from None
        answer = switch(self.versions, self.references, context, profile, accepted_by(args),
                        self.on_switch)
        assert answer is not None  # no expected reference: it always switches
        return answer


def accepted_by(args: dict[str, Any]) -> str:
    """Who accepted a reference, and why: a command's ``by`` and ``note``, for the record."""
    return " ".join(x for x in (str(args.get("by") or ""), str(args.get("note") or "")) if x)


def switch(versions: ReferenceVersions, references: ReferenceSet, context: str,
           profile: ReferenceProfile, by: str,
           on_switch: Callable[[str, ReferenceProfile], None] | None = None, *,
           expect: str | None = None) -> dict[str, Any] | None:
    """Keep ``profile`` as ``context``'s active version and hand it to the monitor (from the
    next window); the command's answer: which reference replaced which, by whom, when.
    With ``expect``, only if the context's reference is still that one (None otherwise:
    another switch came first). One switch at a time (``versions.lock``)."""
    with versions.lock:
        previous = versions.active_id(context) or references.profile(context).id
        if expect is not None and previous != expect:
            return None
        entry = versions.install(profile, context, previous=previous, by=by[:500])
        references.replace(context, profile)
        if on_switch is not None:
            on_switch(context, profile)
    return {"reference_id": profile.id, "previous_reference_id": previous,
            "context": context, "accepted_by": by[:500] or None, "accepted_at": entry["at"]}
