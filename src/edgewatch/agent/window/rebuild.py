"""The ``reference.rebuild`` command: profile the next frames on the device, then switch.

Re-baselining from stored windows (``edgewatch reference accept``) merges their histograms
but cannot rebuild the anomaly model, which needs every frame's features; a reference built
offline (``edgewatch profile build``) needs footage taken off the device. A rebuild builds
the whole reference on the device from what the camera sees now, the way ``profile build``
does from a file (:class:`~edgewatch.agent.window.reference.ReferenceBuilder`: quantile bins,
anomaly model, frame interval and autocorrelation), from the frames the monitor measures.

Arguments: ``frames``, the usable frames to profile (at least ``reference.min_frames``, at
most MAX_FRAMES; default ``reference.min_frames``); optional ``context`` (default
``default``), ``by`` and ``note``; ``cancel = true`` stops a rebuild in progress, ``status =
true`` asks for its progress (``rebuild_profiled`` of ``rebuild_frames``) and how the last
one ended (``rebuild_outcome``). The device answers at once (``rebuild_frames``: the frames
it will profile; 0 for a cancel). From then on every measured frame of that context that is
usable (decoded, inferred, finite outputs) goes into the builder, on the monitor thread;
frames of other contexts and unusable ones are skipped. With ``frames`` of them the profile
is built and switched to as a pushed one is (:func:`~edgewatch.agent.window.versions.switch`:
kept in ``reference.versions_dir``, used from the next window, published retained on
``<device>/reference`` for the default context, in the versions' history with who asked).
The monitor measures ``features.max_fps`` frames a second, so 300 frames take two minutes at
the default 2.5; the profile's frame interval and autocorrelation are those of the measured
frames, which is what the drift judge compares windows with.

One rebuild at a time: a second is refused with the progress of the first. A rebuild whose
context's reference changes before it switches (a push or an acceptance meanwhile) is
dropped, not switched to: the operator's later choice stands (the check and the switch hold
``ReferenceVersions.lock``, as a push's switch does). A rebuild that fails (its profile
cannot be built or kept) leaves the reference as it was. Either is logged and told by
``status``.

A rebuild survives a restart of the agent: what was asked, and how the last rebuild ended,
are kept in ``reference.versions_dir`` (STATE, written atomically). After a restart the
rebuild starts its frames again from the first (the features profiled so far were in
memory only). It is not resumed when the configuration no longer allows it (its context
gone, ``frames`` under a raised ``reference.min_frames``) or when its context's reference
is no longer the one it started from (its own switch just before the restart); the outcome
says so. When the state cannot be written (a full disk), the rebuild goes on and the
failure is logged; a cancelled or ended rebuild's file is then removed rather than left to
bring the rebuild back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from edgewatch.agent.commands import CommandError, CommandRouter
from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.records import Frame, InferenceResult
from edgewatch.agent.window.contexts import DEFAULT, ReferenceSet
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
from edgewatch.agent.window.versions import (
    ReferenceVersions,
    accepted_by,
    atomic_write,
    switch,
)
from edgewatch.config.agent import AgentConfig

log = logging.getLogger(__name__)

__all__ = ["MAX_FRAMES", "ReferenceRebuild"]

MAX_FRAMES = 5_000
"""Frames one rebuild profiles at most: the builder keeps every frame's features until it
builds (a few KB a frame for a detector), and a small device has little memory to spare.
5,000 frames are half an hour at the default 2.5 measured a second."""
COMMAND = "reference.rebuild"
STATE = "rebuild.json"
"""In ``reference.versions_dir``: the rebuild in progress (``run``: context, frames, the
reference it started from, who asked) and how the last one ended (``outcome``)."""


class _Run:
    """One rebuild in progress."""

    def __init__(self, context: str, frames: int, bins: int, base: str, by: str) -> None:
        self.context = context
        self.frames = frames
        self.builder = ReferenceBuilder(bins)
        self.base = base
        """The id of the context's reference when the rebuild began."""
        self.by = by
        self.skipped = 0
        """Measured frames of the context left out as unusable."""
        self.building = False
        """Every frame is in: the profile is being built and switched to."""


class ReferenceRebuild:
    """The ``reference.rebuild`` command handler and the monitor's frame observer that feeds
    it; see the module. ``on_switch`` is called with the context and the new profile when a
    rebuild switches (the agent publishes the reference)."""

    def __init__(self, cfg: AgentConfig, versions: ReferenceVersions,
                 references: ReferenceSet, *,
                 on_switch: Callable[[str, ReferenceProfile], None] | None = None) -> None:
        self.bins = cfg.reference.bins
        self.min_frames = cfg.reference.min_frames
        self.min_samples = cfg.drift.min_reference_samples
        self.versions = versions
        self.references = references
        self.on_switch = on_switch
        self._run: _Run | None = None
        self._lock = threading.Lock()
        self.outcome = ""
        """How the last rebuild ended: switched, cancelled, dropped or failed, and why."""
        self._restore()

    # -- kept across restarts -------------------------------------------------------

    def _restore(self) -> None:
        """The rebuild asked before a restart, started again; the last outcome."""
        path = self.versions.dir / STATE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("reference rebuild: %s unreadable, ignored (%.200s)", path, exc)
            return
        if not isinstance(state, dict):
            return
        self.outcome = str(state.get("outcome") or "")[:4000]
        asked = state.get("run")
        if not isinstance(asked, dict):
            return
        context, frames = asked.get("context"), asked.get("frames")
        base = asked.get("base")
        if context not in self.references.contexts or type(frames) is not int \
                or not self.min_frames <= frames <= MAX_FRAMES:
            self._drop_restored(f"context {str(context)!r:.130} with {frames!s:.20} frames "
                                "is no longer a rebuild this configuration allows")
            return
        active = self._active(context)
        if not isinstance(base, str) or base != active:
            # its own switch just before the restart, or a push or an acceptance first
            self._drop_restored(f"the reference of context {context!r} is {active}, not the "
                                f"{base!s:.130} it started from (this rebuild's own switch "
                                "just before the restart, or a push or an acceptance)")
            return
        self._run = _Run(context, frames, self.bins, base, str(asked.get("by") or "")[:500])
        log.warning("reference rebuild of context %r resumed after a restart: profiling %d "
                    "usable frames from the first", context, frames)

    def _drop_restored(self, why: str) -> None:
        self.outcome = f"not resumed after a restart: {why}"
        log.warning("reference rebuild %s", self.outcome)
        with self._lock:
            self._save()

    def _save(self) -> None:
        """Keep the rebuild in progress and the last outcome (under ``_lock``). A failure is
        logged: a rebuild in progress goes on, but would not survive a restart; with none in
        progress, the file is removed, so that the one just ended cannot come back."""
        run = self._run
        state = {"run": None if run is None else {
                     "context": run.context, "frames": run.frames, "base": run.base,
                     "by": run.by},
                 "outcome": self.outcome}
        try:
            self.versions.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.versions.dir / STATE, (json.dumps(state) + "\n").encode())
        except OSError as exc:
            if run is None:  # (a full disk) removing needs no room: no run comes back
                with contextlib.suppress(OSError):
                    (self.versions.dir / STATE).unlink(missing_ok=True)
            log.warning("reference rebuild: cannot keep its state in %s (%s): a restart "
                        "would forget %s", self.versions.dir, exc,
                        "how the last one ended" if run is None else "it")

    def register(self, router: CommandRouter) -> None:
        router.register(COMMAND, self)

    @property
    def progress(self) -> tuple[str, int, int] | None:
        """(context, frames profiled, frames asked) of the rebuild in progress."""
        run = self._run
        return None if run is None else (run.context, run.builder.frames, run.frames)

    # -- the command (the command thread) ----------------------------------------------

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        for flag in ("cancel", "status"):
            if flag in args and type(args[flag]) is not bool:
                raise CommandError(f"'{flag}' must be true or false")
        if args.get("status"):
            return self._status()
        if args.get("cancel"):
            return self._cancel()
        frames = args.get("frames", self.min_frames)
        if type(frames) is not int or not self.min_frames <= frames <= MAX_FRAMES:
            raise CommandError(f"'frames' must be a whole number from {self.min_frames} "
                               f"(reference.min_frames) to {MAX_FRAMES}")
        context = str(args.get("context") or DEFAULT)
        if context not in self.references.contexts:
            raise CommandError(f"unknown reference context {context!r} (known: "
                               f"{', '.join(self.references.contexts)})")
        with self._lock:
            run = self._run
            if run is not None:
                raise CommandError(
                    f"a reference rebuild of context {run.context!r} is in progress: "
                    f"{run.builder.frames} of {run.frames} frames (cancel = true stops it)")
            self._run = _Run(context, frames, self.bins, self._active(context),
                             accepted_by(args)[:500])
            self._save()
        log.info("reference rebuild of context %r: profiling the next %d usable frames",
                 context, frames)
        return {"context": context, "rebuild_frames": frames}

    def _status(self) -> dict[str, Any]:
        run = self._run
        answer: dict[str, Any] = {"rebuild_outcome": self.outcome[:4000] or None}
        if run is not None:
            answer |= {"context": run.context, "rebuild_frames": run.frames,
                       "rebuild_profiled": run.builder.frames}
        return answer

    def _cancel(self) -> dict[str, Any]:
        with self._lock:
            run = self._run
            if run is None or run.building:
                raise CommandError("no reference rebuild is in progress" if run is None else
                                   "the rebuild has all its frames and is switching: too "
                                   "late to cancel")
            self._run = None
            self.outcome = (f"cancelled after {run.builder.frames} of {run.frames} frames "
                            f"of context {run.context!r}")
            self._save()
        log.warning("reference rebuild %s", self.outcome)
        return {"context": run.context, "rebuild_frames": 0}

    def _active(self, context: str) -> str:
        """The id of the reference ``context`` uses or will use from the next window."""
        return self.versions.active_id(context) or self.references.profile(context).id

    # -- FrameObserver (the monitor thread) --------------------------------------------

    def observe(self, frame: Frame, result: InferenceResult | None,
                measurement: FrameMeasurement, window: tuple[float, float]) -> None:
        run = self._run
        if run is None or run.building or (measurement.context or DEFAULT) != run.context:
            return
        m = measurement
        if (result is None or m.nonfinite or m.inference_error or m.decode_error
                or m.thumbnail is None):
            run.skipped += 1
            return
        run.builder.add(m)
        if run.builder.frames < run.frames:
            return
        with self._lock:
            if self._run is not run:  # cancelled meanwhile
                return
            run.building = True
        try:
            self.outcome = self._finish(run)
        except Exception as exc:
            self.outcome = (f"failed for context {run.context!r}: {type(exc).__name__}: "
                            f"{str(exc)[:300]}")
            log.exception("reference rebuild of context %r failed", run.context)
        finally:
            with self._lock:
                self._run = None
                self._save()

    def _finish(self, run: _Run) -> str:
        """Build the profile and switch to it, unless the context's reference changed
        meanwhile; how it ended."""
        base = self.references.profile(run.context)
        profile = run.builder.build(
            model_sha256=base.model_sha256, model_name=base.model_name, adapter=base.adapter,
            analysis_width=base.analysis_width, min_samples=self.min_samples,
            source=f"rebuilt on the device from {run.builder.frames} frames"
                   + (f" ({run.skipped} unusable skipped)" if run.skipped else ""))
        answer = switch(self.versions, self.references, run.context, profile,
                        run.by or "reference.rebuild", self.on_switch, expect=run.base)
        if answer is None:
            log.warning("reference rebuild of context %r dropped: its reference changed "
                        "while the frames were profiled (a push or an acceptance)",
                        run.context)
            return (f"dropped: the reference of context {run.context!r} changed while its "
                    "frames were profiled (a push or an acceptance came first)")
        log.info("reference rebuild of context %r done: %s replaces %s from the next "
                 "window", run.context, profile.id, answer["previous_reference_id"])
        return (f"switched context {run.context!r} to {profile.id} (previous "
                f"{answer['previous_reference_id']}) after {run.builder.frames} frames"
                + (f", {run.skipped} unusable skipped" if run.skipped else ""))
