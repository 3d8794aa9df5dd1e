"""The lifecycle of a staged model update on the device: verify, shadow, commit, soak, and
roll back when the committed model misbehaves.

States (``edgewatch.update_status/1``): ``received`` -> ``verifying`` -> ``shadow`` ->
``committed`` -> ``soaking`` -> ``done``; or ``rejected`` (the candidate failed a check or a
gate: the running model never changed) or ``rolled_back`` (the committed model failed its
soak: the previous one runs again). Every state is written to ``state.json`` (atomically)
before it is acted on, and published retained on ``<device>/update_status``.

Threads: ``received`` (the transfer's thread) starts a worker thread that loads, validates
and shadows the candidate and, when the gates pass, installs it and loads the session the
live loop will run; the live loop (``observe``, once per frame) offers sampled frames to the
shadow, swaps engines between two frames and watches the soak. A rollback swaps back to the
previous engine, kept loaded for the whole soak.

After a crash, ``UpdateManager`` (at construction) resumes from ``state.json`` and
``current.json``: see docs/updates.md.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgewatch.agent.inference.engine import InferenceEngine, file_sha256
from edgewatch.agent.records import DeferredResult, Frame
from edgewatch.agent.update.compare import Comparison, failures
from edgewatch.agent.update.files import ModelStore, Version, apply_version, write_json_atomic
from edgewatch.agent.update.shadow import (
    FrameQueue,
    Rejection,
    load_candidate,
    run_shadow,
    shadow_model_config,
    validate,
)
from edgewatch.agent.update.soak import Soak, warm_up
from edgewatch.agent.update.staged import StagedUpdate
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.clock import Clock, SystemClock
from edgewatch.config.agent import AgentConfig
from edgewatch.contracts.update_status import FINAL_STATES, Gate, UpdateStatus
from edgewatch.errors import EdgewatchError

log = logging.getLogger(__name__)

Publish = Callable[[UpdateStatus], None]


class UpdateManager:
    """The update lifecycle of one agent: ``received`` (from the transfer), ``observe``
    (from the live loop, once per frame; returns the engine to run from the next frame when
    it changes).

    ``cfg`` is the configuration as written (``model.path``: the base model); the engine
    is the one running, of the version ``current.json`` names (``files.active_model``)."""

    def __init__(self, cfg: AgentConfig, engine: InferenceEngine, *, device: str,
                 publish: Publish | None = None, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.device = device
        self.publish = publish
        self.clock = clock or SystemClock()
        self.store = ModelStore(cfg.update.models_dir)
        self.state: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._frames: FrameQueue | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._pending: InferenceEngine | None = None
        self._pending_soak: Soak | None = None
        self._soak: Soak | None = None
        self._previous: InferenceEngine | None = None
        self._n = 0
        self._live_ms: collections.deque[float] = collections.deque(maxlen=500)
        self.done = threading.Event()
        """Set when an update reaches a final state (tests, the benchmark)."""
        self.resume()

    # -- state -------------------------------------------------------------------------

    def _set(self, state: str, **fields: Any) -> None:
        """Persist, then publish, a new state."""
        with self._lock:
            self.state.update(fields, state=state, time=self.clock.now())
            write_json_atomic(self.store.state_file, self.state)
            snapshot = dict(self.state)
        log.info("update %s: %s%s", snapshot.get("update_id"), state,
                 f" ({snapshot['reason']})" if snapshot.get("reason") else "")
        self._announce(snapshot)
        if state in FINAL_STATES:
            self.done.set()

    def status(self) -> UpdateStatus | None:
        with self._lock:
            return self._status(dict(self.state)) if self.state else None

    def _status(self, s: dict[str, Any]) -> UpdateStatus:
        return UpdateStatus(
            device=self.device, update_id=str(s.get("update_id", "")), state=s["state"],
            time=float(s.get("time", 0.0)), model_sha256=str(s.get("model_sha256", "")),
            running_sha256=self.engine.model_sha256, previous_sha256=str(
                s.get("previous_sha256", "")), version=str(s.get("version", "")),
            reason=str(s.get("reason", ""))[:4000],
            gates=[Gate(**g) for g in s.get("gates", [])][:256],
            shadow_frames=int(s.get("shadow_frames", 0)),
            soak_frames=int(s.get("soak_frames", 0)))

    def _announce(self, snapshot: dict[str, Any]) -> None:
        if self.publish is None:
            return
        try:
            self.publish(self._status(snapshot))
        except Exception as exc:  # the status is also on disk: never fail the lifecycle
            log.warning("update status not published: %s", exc)

    # -- from the transfer ---------------------------------------------------------------

    def received(self, staged: StagedUpdate) -> None:
        """A staged update arrived complete and verified: start its lifecycle (in a worker
        thread). Keyed on the update id: the same update handed again (the receiver hands
        at least once) is ignored; one update at a time: another one in progress refuses
        this one (logged; push it again later)."""
        with self._lock:
            same = self.state.get("update_id") == staged.update_id
            busy = self.state and self.state.get("state") not in FINAL_STATES
        if same:
            log.info("update %s: already %s", staged.update_id, self.state.get("state"))
            return
        if busy:
            log.warning("update %s refused: update %s is %s", staged.update_id,
                        self.state.get("update_id"), self.state.get("state"))
            return
        self.done.clear()
        self.state = {}
        self._set("received", update_id=staged.update_id, model_sha256=staged.model_sha256,
                  staged=_staged_json(staged), reason="", gates=[], shadow_frames=0,
                  soak_frames=0, version="", previous_sha256="")
        if not self.cfg.update.lifecycle:
            self._set("rejected", reason="update.lifecycle is false on this device")
            return
        self._start(staged)

    def _start(self, staged: StagedUpdate) -> None:
        self._frames = FrameQueue(self.cfg.update.shadow_queue)
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, args=(staged,),
                                        name="edgewatch-update", daemon=True)
        self._worker.start()

    # -- the worker thread -----------------------------------------------------------------

    def _work(self, staged: StagedUpdate) -> None:
        frames = self._frames
        assert frames is not None
        u = self.cfg.update
        try:
            self._set("verifying")
            if file_sha256(staged.model) != staged.model_sha256:
                raise Rejection(f"check: {staged.model} does not match its sha256")
            self._check_reference(staged)
            labels = str(staged.labels) if staged.labels else None
            candidate = load_candidate(shadow_model_config(self.cfg.model, str(staged.model),
                                                           labels))
            current = InferenceEngine(shadow_model_config(self.engine.cfg,
                                                          self.engine.cfg.path))
            validate(candidate, frames, u.validate_frames, u.shadow_seconds, self._stop,
                     current)
            if self._stop.is_set():
                return
            self._set("shadow")
            last = [0.0]

            def progress(tally: Comparison) -> None:  # persisted every 10 frames or so
                if tally.frames % 10 == 0 and time.monotonic() - last[0] > 1.0:
                    last[0] = time.monotonic()
                    with self._lock:
                        self.state["shadow_frames"] = tally.frames

            tally = run_shadow(current, candidate, frames, u,
                               self.cfg.model.postprocess.score_threshold, self._stop,
                               progress)
            if self._stop.is_set():
                return
            gates = tally.gates(u)
            gate_rows = [_gate_json(g) for g in gates]
            if not all(g.passed for g in gates):
                self._set("rejected", reason=failures(gates), gates=gate_rows,
                          shadow_frames=tally.frames)
                return
            self._commit(staged, tally, gate_rows)
        except Rejection as exc:
            self._set("rejected", reason=str(exc))
        except Exception as exc:  # a bug or the disk: the running model never changed
            log.exception("update failed")
            self._set("rejected", reason=f"{type(exc).__name__}: {exc}")
        finally:
            self._frames = None

    def _check_reference(self, staged: StagedUpdate) -> None:
        """The reference the agent will judge drift with must fit the candidate."""
        a, w = self.cfg.model.adapter, self.cfg.features.analysis_width
        try:
            if staged.reference is not None:
                ReferenceProfile.load(staged.reference).check_compatible(
                    staged.model_sha256, a, w)
            elif staged.model_sha256 != self.engine.model_sha256:
                current, _ = self.store.current()
                running = apply_version(self.cfg, current)
                ReferenceProfile.load(running.reference.path).check_compatible(
                    staged.model_sha256, a, w)
        except EdgewatchError as exc:
            raise Rejection(f"reference: {exc} (push a reference built with the new "
                            "model)") from exc

    def _commit(self, staged: StagedUpdate, tally: Comparison,
                gate_rows: list[dict[str, Any]]) -> None:
        """Install the version (complete or not at all), load the live session, switch
        ``current.json``, then hand the new engine to the live loop."""
        name = self.store.next_name(staged.model_sha256)
        version = self.store.install(name, staged.model, staged.reference, staged.labels)
        live = InferenceEngine(apply_version(self.cfg, version).model)
        if self._frames is not None:
            warm_up(live, self._frames)
        current, _ = self.store.current()
        baseline = float(np.percentile(list(self._live_ms), 95)) if self._live_ms else 0.0
        self.store.set_current(version, current)  # the switch
        self._set("committed", version=name, previous_sha256=self.engine.model_sha256,
                  previous_version=current.name if current else "", gates=gate_rows,
                  shadow_frames=tally.frames, baseline_ms=baseline,
                  shadow_output=tally.candidate_output_size)
        self._arm_soak(live, previous=self.engine)

    def _arm_soak(self, live: InferenceEngine | None, *,
                  previous: InferenceEngine | None) -> None:
        until = self.clock.now() + self.cfg.update.soak_seconds
        self._set("soaking", soak_until=until)
        soak = Soak(self.cfg, until, float(self.state.get("baseline_ms", 0.0)),
                    float(self.state.get("shadow_output", 0.0)))
        self._previous = previous
        if live is None:  # resumed: the committed model already runs
            self._soak = soak
        else:
            self._pending_soak = soak
            self._pending = live

    # -- the live loop ------------------------------------------------------------------------

    def observe(self, frame: Frame, result: DeferredResult | None,
                failed: bool) -> InferenceEngine | None:
        """One live frame, after its inference: offered to the shadow (one in
        ``update.sample_every``), counted by the soak. Returns the engine to run from the
        next frame on when it changes (a commit, a rollback), else None."""
        self._n += 1
        sampled = self._n % self.cfg.update.sample_every == 0
        if result is not None:
            self._live_ms.append(result.timings.inference_ms)
        frames = self._frames
        if frames is not None and sampled and frame.image is not None:
            frames.offer(frame.image)
        soak = self._soak
        if soak is not None:
            soak.add(result, failed, sampled)
            swap = self._judge_soak(soak)
            if swap is not None:
                return swap
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._soak, self._pending_soak = self._pending_soak, None
            self.engine = pending
            return pending
        return None

    def _judge_soak(self, soak: Soak) -> InferenceEngine | None:
        gates = soak.gates()
        if not all(g.passed for g in gates):
            return self._rollback(soak, failures(gates), gates)
        if self.clock.now() >= soak.until:
            self._soak = None
            self._previous = None
            rows = list(self.state.get("gates", [])) + [_gate_json(g) for g in gates]
            self._set("done", soak_frames=soak.frames, gates=rows)
            keep = {self.state.get("version", "")}
            self.store.prune(keep)
        elif soak.frames % 100 == 0:
            with self._lock:
                self.state["soak_frames"] = soak.frames
        return None

    def _rollback(self, soak: Soak | None, reason: str,
                  gates: list[Gate]) -> InferenceEngine | None:
        """Back to the previous model: ``current.json`` first, then the engine."""
        self._soak = None
        _, previous = self.store.current()
        self.store.set_current(previous, None)
        engine = self._previous
        if engine is None:  # resumed after a restart: load it (rare, a pause of a second)
            engine = InferenceEngine(apply_version(self.cfg, previous).model)
        self._previous = None
        rows = list(self.state.get("gates", [])) + [_gate_json(g) for g in gates]
        self.engine = engine
        self._set("rolled_back", reason=reason, gates=rows,
                  soak_frames=soak.frames if soak else 0)
        return engine

    # -- start-up -----------------------------------------------------------------------------

    def resume(self) -> None:
        """Pick up where a crash left the lifecycle (state.json, current.json)."""
        from edgewatch.agent.update.files import read_json

        state = read_json(self.store.state_file)
        if not state or "state" not in state:
            return
        self.state = state
        name = state["state"]
        current, _ = self.store.current()
        committed = current is not None and current.name == state.get("version") and bool(
            state.get("version"))
        if name in FINAL_STATES:
            self._announce(dict(self.state))
            self.done.set()
            return
        if name in ("committed", "soaking") or committed:
            if self.engine.model_sha256 != state.get("model_sha256"):
                # the committed files were incomplete: active_model went back already
                self._set("rolled_back", reason=state.get("reason") or
                          "the committed model did not start")
                return
            log.info("update %s: resuming the soak after a restart", state.get("update_id"))
            self._arm_soak(None, previous=None)
            return
        staged = _staged_from(state.get("staged"))
        if staged is None or not staged.model.is_file() or file_sha256(
                staged.model) != staged.model_sha256:
            self._set("rejected", reason=f"interrupted while {name} (restart), and the "
                      "staged files are gone")
            return
        log.info("update %s: interrupted while %s: shadowing again", staged.update_id, name)
        self._set("received", reason="", shadow_frames=0)
        if not self.cfg.update.lifecycle:
            self._set("rejected", reason="update.lifecycle is false on this device")
            return
        self._start(staged)

    def shadow_counters(self) -> dict[str, int]:
        """Frames offered to the running shadow, dropped (it was behind) and compared."""
        frames = self._frames
        return {"offered": frames.offered if frames else 0,
                "dropped": frames.dropped if frames else 0,
                "compared": int(self.state.get("shadow_frames", 0))}

    def close(self) -> None:
        """Stop the worker (its state stays as it is: the next start resumes it)."""
        self._stop.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout=10.0)


def _gate_json(g: Gate) -> dict[str, Any]:
    return {"name": g.name, "value": float(g.value), "limit": float(g.limit),
            "passed": bool(g.passed)}


def _staged_json(s: StagedUpdate) -> dict[str, Any]:
    return {"update_id": s.update_id, "directory": str(s.directory), "model": str(s.model),
            "model_sha256": s.model_sha256,
            "reference": str(s.reference) if s.reference else None,
            "labels": str(s.labels) if s.labels else None, "signed": s.signed,
            "received": s.received}


def _staged_from(d: Any) -> StagedUpdate | None:
    if not isinstance(d, dict):
        return None
    try:
        return StagedUpdate(
            update_id=d["update_id"], directory=Path(d["directory"]), model=Path(d["model"]),
            model_sha256=d["model_sha256"],
            reference=Path(d["reference"]) if d.get("reference") else None,
            labels=Path(d["labels"]) if d.get("labels") else None,
            signed=bool(d.get("signed")), received=float(d.get("received", 0.0)))
    except (KeyError, TypeError, ValueError):
        return None


__all__ = ["Soak", "UpdateManager", "Version"]
