"""The agent assembled: the one place that wires it from a configuration.

``build_agent`` is the composition root of ``edgewatch run``, ``edgewatch replay`` and
``AppMonitor``: inference -> monitor (quality checks, drift judge, resources) -> window
outputs in order (the application's sink, JSON lines, the outbox and its publisher, the alert
rules), in :class:`~edgewatch.agent.outputs.AgentOutputs`. The sources the commands read are
opened by :mod:`edgewatch.agent.source_config`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgewatch.agent.inference.failures import infer_safely
from edgewatch.agent.measure.checks import FrameChecks
from edgewatch.agent.measure.frame import FrameMeasurer
from edgewatch.agent.measure.image import ImageFeatureExtractor
from edgewatch.agent.measure.outputs import OutputFeatureExtractor, load_labels
from edgewatch.agent.outputs import AgentOutputs
from edgewatch.agent.progress import Progress
from edgewatch.agent.records import DeferredResult, Frame, SignalChange
from edgewatch.agent.source import FrameSource, LiveSource
from edgewatch.agent.source_config import expected_frames, open_live, open_recorded
from edgewatch.agent.window.contexts import DEFAULT as DEFAULT_CONTEXT
from edgewatch.agent.window.contexts import ContextRule, ReferenceSet
from edgewatch.agent.window.drift_judge import DriftJudge
from edgewatch.agent.window.monitor import Monitor, MonitorSettings
from edgewatch.agent.window.monitor_parts import FrameObserver, Sink
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.clock import Clock, SystemClock
from edgewatch.errors import ConfigError

if TYPE_CHECKING:  # what only a live agent (or a type checker) needs is imported where used
    from edgewatch.agent.delivery.assembly import Delivery
    from edgewatch.agent.delivery.sinks import JsonlSink
    from edgewatch.agent.evidence.capture import EvidenceCapture
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.update.lifecycle import UpdateManager
    from edgewatch.agent.update.staged import StagedUpdate
    from edgewatch.config.agent import AgentConfig
    from edgewatch.contracts.update_status import UpdateStatus
    from edgewatch.supervision import Supervisor

__all__ = ["Agent", "AgentOutputs", "build_agent", "device_id",
           "expected_frames", "make_evidence", "make_measurer", "make_monitor",
           "make_references", "make_update", "offline_config", "open_live", "open_recorded",
           "replay_config"]

log = logging.getLogger(__name__)


def device_id(cfg: AgentConfig) -> str:
    if cfg.device.id:
        return cfg.device.id
    import socket  # here: a replay never asks for it

    return socket.gethostname()


def make_measurer(cfg: AgentConfig) -> FrameMeasurer:
    try:
        labels = load_labels(cfg.model.labels, cfg.model.resolved_labels_offset)
    except OSError as exc:
        raise ConfigError(f"model.labels: cannot read {cfg.model.labels} ({exc.strerror})") from exc
    post = cfg.model.postprocess
    return FrameMeasurer(
        ImageFeatureExtractor(cfg.features.analysis_width),
        OutputFeatureExtractor(post.score_threshold, post.near_band, labels=labels),
    )


def offline_config(cfg: AgentConfig) -> AgentConfig:
    """The configuration of an offline replay: it starts from a clean alert state and keeps
    none."""
    return dataclasses.replace(cfg, alerts=dataclasses.replace(cfg.alerts,
                                                               state_path=":memory:"))


def replay_config(cfg: AgentConfig, *, publish: bool) -> AgentConfig:
    """The configuration of ``edgewatch replay``: offline (``offline_config``) unless it
    publishes, and never sampling resources: a replay's windows are spans of footage, which
    it runs through faster than real time on whatever machine it is, so its CPU, memory
    and temperature would describe neither the device nor the footage."""
    cfg = cfg if publish else offline_config(cfg)
    return dataclasses.replace(cfg, resources=dataclasses.replace(cfg.resources,
                                                                  enabled=False))


def make_monitor(cfg: AgentConfig, reference: ReferenceProfile, sink: Sink, *, live: bool,
                 lossless: bool = False, clock: Clock | None = None,
                 on_signal: Callable[[SignalChange], None] | None = None,
                 observer: FrameObserver | None = None) -> Monitor:
    """A Monitor with the configured windows, quality checks, anomaly score and drift judge;
    ``on_signal`` hears of a lost or restored picture at once (the no-signal alert),
    ``observer`` sees every measured frame (evidence capture)."""
    settings = MonitorSettings(
        window_seconds=cfg.window.seconds, window_frames=cfg.window.frames,
        queue_size=cfg.features.queue_size, every_nth=cfg.features.every_nth,
        max_fps=cfg.features.max_fps, live=live, lossless=lossless,
    )
    resources = None
    if cfg.resources.enabled:
        from edgewatch.agent.window.resources import ResourceSampler  # psutil

        resources = ResourceSampler(cfg.resources.disk_path)
    if cfg.reference.contexts or cfg.reference.versions_dir:
        # context references and/or switchable references (docs/drift.md, re-baselining)
        refs = make_references(cfg, reference)
        return Monitor(reference, make_measurer(cfg), sink, settings, check=refs, judge=refs,
                       windows=refs, resources=resources, clock=clock or SystemClock(),
                       on_signal=on_signal, observer=observer)
    return Monitor(
        reference, make_measurer(cfg), sink, settings,
        check=FrameChecks(cfg.quality, reference), judge=DriftJudge(cfg.drift, reference),
        resources=resources, clock=clock or SystemClock(), on_signal=on_signal,
        observer=observer,
    )


def make_references(cfg: AgentConfig, reference: ReferenceProfile) -> ReferenceSet:
    """The default reference and those of ``reference.contexts`` (each checked against the
    default's model, adapter and analysis width); the accepted or pushed reference of a
    context in ``reference.versions_dir`` replaces its configured file."""
    from edgewatch.agent.window.versions import ReferenceVersions

    store = ReferenceVersions(cfg.reference.versions_dir) if cfg.reference.versions_dir \
        else None
    contexts = []
    for c in cfg.reference.contexts:
        profile = store.active(c.name) if store is not None else None
        if profile is None:
            profile = ReferenceProfile.load(c.path)
        profile.check_compatible(reference.model_sha256, reference.adapter,
                                 reference.analysis_width)
        contexts.append((ContextRule.from_config(c), profile))
    return ReferenceSet(cfg.quality, cfg.drift, reference, contexts)


def make_evidence(cfg: AgentConfig, reference: ReferenceProfile, model_sha256: str,
                  clock: Clock | None = None) -> EvidenceCapture | None:
    """The evidence capture of ``[evidence]`` (None when disabled): its store keeps
    ``outbox.max_mb`` plus ``evidence.min_free_mb`` free on the disk."""
    if not cfg.evidence.enabled:
        return None
    from edgewatch.agent.evidence.capture import Identity, open_capture

    labels = make_measurer(cfg).outputs
    identity = Identity(device_id(cfg), model_sha256, reference.id,
                        cfg.model.postprocess.score_threshold)
    try:
        capture = open_capture(cfg.evidence, identity, label=labels.label, clock=clock,
                               reserve_bytes=int(cfg.outbox.max_mb * 2**20))
    except OSError as exc:
        raise ConfigError(f"evidence.path: cannot open {cfg.evidence.path} ({exc})") from exc
    except Exception as exc:  # the face detector (RedactionError)
        raise ConfigError(f"evidence.redact: {exc}") from exc
    redaction = "faces blurred" if cfg.evidence.redact.enabled else "NOT redacted"
    log.info("evidence: frames kept in %s (%s; at most %d an hour, %.0f MB)", cfg.evidence.path,
             redaction, cfg.evidence.max_per_hour, cfg.evidence.max_mb)
    return capture


class Agent:
    """The agent assembled: the monitor, where its windows go (``outputs``) and, with an
    inference engine, the monitored loop over a source.

    ``build_agent`` wires one from the configuration. Given a plain sink instead of
    ``AgentOutputs``, windows go to that sink only (tests, benchmarks).
    """

    def __init__(self, cfg: AgentConfig, engine: InferenceEngine | None,
                 reference: ReferenceProfile, sink: Sink | AgentOutputs, *, live: bool,
                 lossless: bool = False, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.update: UpdateManager | None = None
        """The model update lifecycle (``edgewatch run``): offered frames, may swap
        ``engine`` between two frames (a commit, a rollback)."""
        self.outputs = sink if isinstance(sink, AgentOutputs) else AgentOutputs(sink=sink)
        self.stop = threading.Event()
        self.monitor = make_monitor(cfg, reference, self.outputs, live=live, lossless=lossless,
                                    clock=clock or SystemClock(), on_signal=self.outputs.signal,
                                    observer=self.outputs.evidence)

    def start(self) -> None:
        """Start publishing (a no-op without delivery)."""
        self.outputs.start()

    def process(self, frame: Frame) -> DeferredResult | None:
        """One frame: inference, then the monitor (outputs decoded on the monitor thread,
        only if it is sampled). Returns the inference result, undecoded (its ``timings``
        let a caller tell the session's time from edgewatch's own), None when it failed."""
        if self.engine is None:
            raise RuntimeError("this agent has no inference engine (the application runs "
                               "the model: AppMonitor.observe)")
        result, failed = infer_safely(self.engine.infer_deferred, frame.image)
        self.monitor.observe(frame, result, failed)
        if self.update is not None:
            swap = self.update.observe(frame, result, failed)
            if swap is not None:  # between two frames: the next one runs the other model
                self.engine = swap
        return result

    def run(self, source: FrameSource, progress: Progress | None = None,
            supervisor: Supervisor | None = None) -> int:
        """Process frames until the source ends or stop is set; returns frames seen.

        With a ``supervisor`` (systemd), each processed frame is progress (the first one
        makes the agent ready), and so is a live source's reconnection attempt; a hung read
        or inference is not, and the watchdog pings stop.

        The monitor is closed at the end (every open window emitted); ``close`` then closes
        the outputs."""
        from edgewatch.supervision import public_uri

        seen = 0
        undecodable = 0
        name = public_uri(source.description)
        if supervisor is not None:
            def status() -> str:
                bad = f", {undecodable} undecodable" if undecodable else ""
                return f"monitoring {name}: {seen} frames{bad}"

            supervisor.status = status
            if isinstance(source, LiveSource):
                # the wait, then the next open (opencv's FFmpeg gives up after 30 s)
                source.on_retry = lambda wait: supervisor.waiting(
                    wait + 30.0, f"reconnecting {name} (next attempt in {wait:.0f} s)")
            supervisor.start()
        try:
            for frame in source.frames(self.stop):
                self.process(frame)
                seen += 1
                if frame.image is None:
                    undecodable += 1
                if supervisor is not None:
                    supervisor.beat()
                if progress:
                    progress.update()
        finally:
            self.monitor.close()
            if progress:
                progress.close()
        return seen

    def close(self, drain_timeout: float = 0.0, *, only_connected: bool = False) -> bool:
        """Emit the open windows, stop the monitor, then close the outputs (see
        ``AgentOutputs.close``); False when the outbox did not drain in time."""
        if self.update is not None:
            self.update.close()
        self.monitor.close()
        return self.outputs.close(drain_timeout, only_connected=only_connected)


def _staged_logged(staged: StagedUpdate) -> None:
    """Until the update lifecycle takes staged updates: say where it is."""
    log.warning("update %s staged in %s (model sha256 %s); no update lifecycle installed "
                "to take it", staged.update_id, staged.directory, staged.model_sha256[:16])


def make_update(cfg: AgentConfig, engine: InferenceEngine, delivery: Delivery | None,
                clock: Clock | None = None) -> UpdateManager:
    """The update lifecycle of a live agent (it resumes a crashed one now); its states are
    published retained on ``<device>/update_status``, and a commit or rollback changes the
    model the birth message announces."""
    import msgspec

    from edgewatch.agent.update.lifecycle import UpdateManager

    publisher = delivery.publisher if delivery is not None else None
    publish = None
    if publisher is not None and delivery is not None:
        topic = delivery.topics.update_status

        def publish(status: UpdateStatus) -> None:
            if status.state in ("committed", "rolled_back") and status.running_sha256:
                publisher.manifest = msgspec.structs.replace(
                    publisher.manifest, model_sha256=status.running_sha256)
            publisher.retain(topic, status)

    return UpdateManager(cfg, engine, device=device_id(cfg), publish=publish, clock=clock)


def build_agent(cfg: AgentConfig, reference: ReferenceProfile, *, publish: bool, live: bool,
                engine: InferenceEngine | None = None, lines: JsonlSink | None = None,
                sink: Sink | None = None, lossless: bool = False, clock: Clock | None = None,
                config_path: str | Path | None = None,
                base_config: AgentConfig | None = None) -> Agent:
    """The agent wired from ``cfg``: what ``run``, ``replay`` and ``AppMonitor`` use.

    - ``sink``: the application's own window output, first.
    - ``lines``: JSON lines of windows and, with alerts enabled, of alerts too.
    - ``publish``: queue windows and alerts in the outbox (``[outbox]``) and publish them to
      the broker of ``[mqtt]``; the publisher answers the device's commands.
    - The alert rules (``alerts.enabled``) run when their alerts have somewhere to go:
      ``lines`` or the outbox.
    - ``[evidence]`` (``evidence.enabled``): frames kept on the device when an alert fires,
      near the threshold and at random; the alert rules then run even without ``lines`` or
      an outbox. With ``publish`` too, the device answers ``evidence.list`` and
      ``evidence.send`` and sends the frames asked for through its publisher
      (``edgewatch.agent.evidence.transfer``).
    - ``engine``: the inference engine, for ``Agent.run`` over a source, and the model
      identity the device announces; without one (an application's own session), the
      reference profile's model.
    - ``base_config``: with an engine and a live source, the configuration as written
      (``model.path`` the base model) when ``cfg`` is the one ``update.files.active_model``
      chose (the committed version); the update lifecycle (``edgewatch.agent.update``) then
      takes the updates the receiver stages, and reports them retained on
      ``<device>/update_status``.

    Nothing is published before ``start``; ``close`` closes everything.
    """
    from edgewatch.agent.delivery.assembly import Delivery, make_alerting

    if engine is not None:
        model_name, model_sha256 = engine.model_name, engine.model_sha256
    else:
        model_name, model_sha256 = reference.model_name, reference.model_sha256
    delivery = Delivery(
        cfg, reference, device=device_id(cfg), model_name=model_name,
        model_sha256=model_sha256, config_path=config_path, publish=True, clock=clock,
    ) if publish else None
    evidence = make_evidence(cfg, reference, model_sha256, clock)
    alerting = make_alerting(
        cfg, model_sha256=model_sha256, lines=lines,
        outbox=delivery.outbox if delivery else None,
        publisher=delivery.publisher if delivery else None,
        commands=delivery.commands if delivery else None,
        on_alert=evidence.alert if evidence else None,
    ) if lines is not None or delivery is not None or evidence is not None else None
    if delivery is not None and delivery.publisher is not None and evidence is not None:
        # evidence retrieval (edgewatch evidence pull): commands on the router, chunks
        # through the publisher at the lowest priority
        from edgewatch.agent.evidence.transfer import EvidenceSender

        sender = EvidenceSender(cfg.evidence.path, device_id(cfg),
                                chunk_bytes=cfg.evidence.chunk_kib * 1024,
                                bytes_per_s=cfg.evidence.send_kib_per_s * 1024)
        sender.register(delivery.commands)
        delivery.publisher.bulk = sender
    update = make_update(base_config or cfg, engine, delivery, clock) \
        if engine is not None and live else None
    if delivery is not None and delivery.publisher is not None:
        # model updates pushed by the fleet (edgewatch model push): staged beside the
        # running model, then handed to the update lifecycle
        from edgewatch.agent.update.receive import open_receiver

        receiver = open_receiver(cfg, device_id(cfg),
                                 on_staged=update.received if update else _staged_logged)
        receiver.register(delivery.commands)
        delivery.publisher.updates = receiver.chunk
    outputs = AgentOutputs(sink=sink, lines=lines, delivery=delivery, alerting=alerting,
                           evidence=evidence)
    agent = Agent(cfg, engine, reference, outputs, live=live, lossless=lossless, clock=clock)
    agent.update = update
    refs = agent.monitor.windows
    if delivery is not None and cfg.reference.versions_dir and isinstance(refs, ReferenceSet):
        # re-baselining: reference.push switches a reference, which is then published
        from edgewatch.agent.window.versions import ReferencePush, ReferenceVersions

        publisher = delivery.publisher

        def published(context: str, profile: ReferenceProfile) -> None:
            if publisher is not None and context == DEFAULT_CONTEXT:
                publisher.set_reference(profile.to_contract(device_id(cfg)))

        versions = ReferenceVersions(cfg.reference.versions_dir)
        ReferencePush(versions, refs, on_switch=published).register(delivery.commands)
        # reference.rebuild: the next measured frames, profiled here
        from edgewatch.agent.window.monitor_parts import FrameObservers
        from edgewatch.agent.window.rebuild import ReferenceRebuild

        rebuild = ReferenceRebuild(cfg, versions, refs, on_switch=published)
        rebuild.register(delivery.commands)
        agent.monitor.observer = FrameObservers(agent.monitor.observer, rebuild)
    return agent
