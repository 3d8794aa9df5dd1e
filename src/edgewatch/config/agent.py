"""The agent's configuration tree: one TOML file, validated at start-up.

Every key is declared here with its documentation (the ``[model]`` section in
:mod:`edgewatch.config.model`, the ``[mqtt]`` and ``[outbox]`` sections in
:mod:`edgewatch.config.delivery`); ``configs/agent.toml`` shows them all and
``docs/configuration.md`` is checked against this tree by the tests.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from edgewatch.config.delivery import MqttConfig, OutboxConfig
from edgewatch.config.maintenance import (
    DeploymentConfig,
    EvidenceConfig,
    UpdateConfig,
)
from edgewatch.config.model import Adapter, ModelConfig, PostprocessConfig, PreprocessConfig
from edgewatch.config.typed import build, read_toml, section, setting
from edgewatch.contracts.topics import ID_PATTERN

__all__ = [  # the [model] section's classes live in edgewatch.config.model
    "Adapter", "AgentConfig", "AlertsConfig", "ContextConfig", "DeviceConfig", "DriftConfig",
    "FeaturesConfig", "ModelConfig", "OutputConfig", "PostprocessConfig", "PreprocessConfig",
    "QualityConfig", "ReferenceConfig", "ResourcesConfig", "RuleConfig", "SourceConfig",
    "WindowConfig", "config_warnings", "load_config", "parse_config",
]


@dataclasses.dataclass(frozen=True)
class DeviceConfig:
    id: str = setting("", "Device identifier in messages and topics; empty means the host name.")
    fleet: str = setting("default", "Fleet the device belongs to (MQTT topic level).")

    def validate(self) -> None:
        for key, value in (("id", self.id), ("fleet", self.fleet)):
            if value and not ID_PATTERN.fullmatch(value):
                raise ValueError(f"{key} {value!r}: expected letters, digits, '.', '_' or '-'"
                                 " (starting with a letter or digit)")


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    uri: str = setting(
        "", "Video file, directory of images, camera index ('0') or rtsp/http URL; "
        "'edgewatch run' plays files and folders in real time."
    )
    fps: float = setting(
        0.0, "Frame rate for timestamps of recorded sources; 0 uses the file's own rate.",
        minimum=0.0,
    )
    reconnect_initial_s: float = setting(
        1.0, "First wait before reopening a live source that failed.", minimum=0.01
    )
    reconnect_max_s: float = setting(
        60.0, "Longest wait between reopen attempts (the wait doubles up to it).", minimum=0.01
    )


@dataclasses.dataclass(frozen=True)
class FeaturesConfig:
    analysis_width: int = setting(
        160, "Input features are computed on the frame downscaled (nearest neighbour) to "
        "this width.", minimum=16, maximum=4096,
    )
    every_nth: int = setting(1, "Monitor one frame in N (1 monitors every frame).", minimum=1)
    max_fps: float = setting(
        2.5, "Monitor at most this many frames per second of stream time (0: no limit). "
        "Frames past the cap, like those skipped by every_nth, are counted as sampled_out; "
        "the drift tests account for the sampling (see docs/drift.md).", minimum=0.0,
    )
    queue_size: int = setting(
        32, "Frames waiting for the monitor thread; when full, frames are skipped and counted.",
        minimum=1, maximum=10000,
    )


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    seconds: float = setting(60.0, "A window closes after this many seconds.", minimum=0.1)
    frames: int = setting(
        0, "If > 0, a window also closes after this many frames seen.", minimum=0
    )


@dataclasses.dataclass(frozen=True)
class ContextConfig:
    """A context reference: used for the windows whose frames match ``when``."""

    name: str = setting("", "Context name (unique, not 'default'); summaries carry it.")
    path: str = setting("", "Reference profile JSON of this context ('edgewatch profile "
                        "build' on footage of it).")
    greyscale: bool | None = setting(
        None, "Match frames whose 'greyscale' feature is 1 (true: IR / monochrome) or 0 "
        "(false); unset: either.")
    brightness_below: float | None = setting(
        None, "Match frames whose mean brightness is below this (0-255); unset: any.",
        minimum=0.0, maximum=256.0)
    brightness_above: float | None = setting(
        None, "Match frames whose mean brightness is at or above this; unset: any.",
        minimum=0.0, maximum=256.0)

    def validate(self) -> None:
        if not self.name or self.name == "default" or len(self.name) > 64:
            raise ValueError("every reference context needs a name (1-64 characters, not "
                             "'default')")
        if not self.path:
            raise ValueError(f"reference context {self.name!r}: path is required")
        if self.greyscale is None and self.brightness_below is None \
                and self.brightness_above is None:
            raise ValueError(f"reference context {self.name!r}: set at least one condition "
                             "(greyscale, brightness_below, brightness_above)")


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    path: str = setting("", "Reference profile JSON (from 'edgewatch profile build').")
    versions_dir: str = setting(
        "", "Directory of accepted, pushed and rebuilt reference profiles ('edgewatch "
        "reference accept|push|rebuild'); the active one per context is recorded there and "
        "used at start-up instead of 'path'. \"\" = no re-baselining (the commands are "
        "refused).")
    contexts: list[ContextConfig] = dataclasses.field(
        default_factory=list,
        metadata={"doc": "Context references ([[reference.contexts]] tables: name, path and "
                         "conditions); the first whose conditions the majority of a window's "
                         "frames match judges it, else the default reference (see "
                         "docs/drift.md)."})
    bins: int = setting(
        20, "Quantile bins per feature when building a profile.", minimum=2, maximum=1000
    )
    min_frames: int = setting(
        20, "'profile build' refuses a source with fewer usable frames (decoded, inferred, "
        "finite outputs); also the fewest, and the default, frames of a 'reference "
        "rebuild'.", minimum=1,
    )


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    warning_effect: float = setting(
        2.0, "Effect size (shift in reference spreads, see docs/drift.md) at which a "
        "significant feature counts as a warning.", minimum=0.0,
    )
    drift_effect: float = setting(
        4.0, "Effect size at which a significant feature counts as drifted.", minimum=0.0
    )
    alpha: float = setting(
        0.01, "False discovery rate across features (Benjamini-Hochberg) for the "
        "autocorrelation-corrected tests.", minimum=1e-12, maximum=0.5,
    )
    persistence: int = setting(
        2, "Consecutive windows a feature must stay drifted before the verdict is 'drift' "
        "(before that it is 'warning').", minimum=1, maximum=100,
    )
    immediate_effect: float = setting(
        8.0, "Effect size so large that one window suffices for 'drift'.", minimum=0.0
    )
    min_frames: int = setting(
        10, "Windows with fewer monitored frames get no drift verdict ('ok', insufficient).",
        minimum=1,
    )
    categorical_warning_js: float = setting(
        0.3, "Jensen-Shannon distance of a label mix (classes, positions) for a warning.",
        minimum=0.0, maximum=1.0,
    )
    categorical_drift_js: float = setting(
        0.5, "Jensen-Shannon distance of a label mix for drift.", minimum=0.0, maximum=1.0
    )
    ignore: list[str] = setting(
        [], "Features left out of the verdict (still measured and reported)."
    )
    min_reference_samples: int = setting(
        20, "A feature votes only with at least this many samples in the reference (values, "
        "counting a frame's detections once; see docs/drift.md).", minimum=1,
    )
    min_window_samples: int = setting(
        5, "A feature votes only with at least this many samples in the window (values, at "
        "most one per monitored frame).", minimum=1,
    )

    def validate(self) -> None:
        if self.drift_effect < self.warning_effect:
            raise ValueError("drift_effect must be >= warning_effect")
        if self.categorical_drift_js < self.categorical_warning_js:
            raise ValueError("categorical_drift_js must be >= categorical_warning_js")


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    black_brightness: float = setting(
        16.0, "A uniform frame at or below this mean luma is 'black'.", minimum=0.0
    )
    blank_contrast: float = setting(
        3.0, "Luma standard deviation at or below which a frame is uniform (black or blank).",
        minimum=0.0,
    )
    frozen_max_diff: float = setting(
        0.25, "Mean absolute difference (grey levels, 32x24 thumbnail) below which two "
        "consecutive frames are the same picture.", minimum=0.0,
    )
    frozen_seconds: float = setting(
        2.0, "How long the picture must stay unchanged to count as frozen.", minimum=0.0
    )
    overexposed_fraction: float = setting(
        0.3, "Share of clipped-bright pixels from which a frame is over-exposed.",
        minimum=0.0, maximum=1.0,
    )
    underexposed_fraction: float = setting(
        0.5, "Share of clipped-dark pixels from which a frame is under-exposed.",
        minimum=0.0, maximum=1.0,
    )
    blur_ratio: float = setting(
        0.25, "A frame is blurred when its sharpness is below this fraction of the "
        "reference's median sharpness.", minimum=0.0, maximum=1.0,
    )
    empty_streak_seconds: float = setting(
        10.0, "Seconds without any detection that count as an empty-output streak (only for "
        "cameras whose reference frames mostly have detections).", minimum=0.0,
    )
    reference_fault_share: float = setting(
        0.05, "When at least this share of the reference's own frames already meets a "
        "threshold fault (overexposed, underexposed, black/blank, blurred), that fault's "
        "threshold moves just beyond what the reference shows (the scene is bright, dark, "
        "uniform or soft, not faulty); 0 keeps the absolute thresholds.",
        minimum=0.0, maximum=1.0,
    )
    no_signal_seconds: float = setting(
        3.0, "Report no signal (black, frozen, undecodable frames, failed inference, or a "
        "live source delivering no frames) as soon as it has lasted this long, before the "
        "window closes; 0 turns this fast path off.", minimum=0.0,
    )


@dataclasses.dataclass(frozen=True)
class ResourcesConfig:
    enabled: bool = setting(
        True, "Sample process and system resources once per window ('run' and the library; "
        "'replay' never does: its windows are spans of footage run faster than real time).")
    disk_path: str = setting("/", "Filesystem whose usage is reported.")


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    jsonl: str = setting(
        "", "If set, 'edgewatch run' appends every summary line to this file."
    )


@dataclasses.dataclass(frozen=True)
class RuleConfig:
    name: str = setting("", "Rule name (unique; used by commands: disable, set-threshold).")
    metric: str = setting(
        "drift.severity", "What is evaluated on each window; see docs/alerts.md for the list "
        "(drift.severity, drift.score, drift.feature, anomaly.rate, quality, latency.p95, "
        "fps, cpu, memory, temperature, disk, outbox.pending, signal).")
    op: Literal[">", ">=", "<", "<="] = setting(">=", "Comparison of observed with threshold.")
    threshold: float = setting(0.0, "The value the observation is compared with.")
    severity: Literal["info", "warning", "critical"] = setting("warning", "Alert severity.")
    for_windows: int = setting(
        1, "Consecutive windows the condition must hold before the alert fires.", minimum=1)
    resolve_windows: int = setting(
        1, "Consecutive windows the condition must be clear before the alert resolves.",
        minimum=1)
    resolve_threshold: float | None = setting(
        None, "Hysteresis: the value that counts as clear (defaults to the threshold).")
    enabled: bool = setting(True, "A disabled rule is not evaluated.")
    incident: str = setting(
        "", "Incident group: an alert firing while another of its group is active joins that "
        "incident instead of notifying. \"\" = by metric: drift.* and anomaly.rate \"drift\", "
        "quality and signal \"quality\", any other the rule's own name.")

    def validate(self) -> None:
        from edgewatch.agent.alerts.rule_metrics import METRICS

        if not self.name:
            raise ValueError("every alert rule needs a name")
        if self.metric not in METRICS:
            raise ValueError(f"metric {self.metric!r}: expected one of {', '.join(METRICS)}")


def _default_rules() -> list[RuleConfig]:
    return [
        RuleConfig("drift", "drift.severity", ">=", 2.0, "critical", 1, 2),
        RuleConfig("anomalies", "anomaly.rate", ">=", 0.2, "warning", 2, 2, 0.05),
        RuleConfig("no-signal", "signal", ">=", 1.0, "critical", 1, 1),
        RuleConfig("quality", "quality", ">=", 0.5, "critical", 1, 1, 0.1),
        RuleConfig("latency", "latency.p95", ">", 500.0, "warning", 3, 3),
        RuleConfig("temperature", "temperature", ">=", 85.0, "warning", 2, 2, 80.0),
        RuleConfig("disk", "disk", ">=", 95.0, "warning", 1, 2, 90.0),
        RuleConfig("backlog", "outbox.pending", ">=", 1000.0, "warning", 3, 3, 100.0),
    ]


@dataclasses.dataclass(frozen=True)
class AlertsConfig:
    enabled: bool = setting(True, "Evaluate alert rules on every window.")
    state_path: str = setting(
        "edgewatch-alerts.db", "SQLite file keeping alert state and operator overrides "
        "(acknowledged, snoozed, disabled rules, thresholds) across restarts.")
    renotify_s: float = setting(
        3600.0, "A firing alert nobody acknowledged is sent again this often (0 = never).",
        minimum=0.0)
    command_token: str = setting(
        "", "If set, commands must carry this value as 'token' (besides the broker ACL).")
    rules: list[RuleConfig] = dataclasses.field(
        default_factory=_default_rules,
        metadata={"doc": "Alert rules ([[alerts.rules]] tables; replaces the defaults)."})


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    device: DeviceConfig = section(DeviceConfig, "Identity of this device.")
    model: ModelConfig = section(ModelConfig, "The ONNX model and how to run it.")
    source: SourceConfig = section(SourceConfig, "Where frames come from.")
    features: FeaturesConfig = section(FeaturesConfig, "Per-frame measurement.")
    window: WindowConfig = section(WindowConfig, "Aggregation windows.")
    reference: ReferenceConfig = section(ReferenceConfig, "Reference profile.")
    drift: DriftConfig = section(DriftConfig, "Drift verdicts.")
    quality: QualityConfig = section(QualityConfig, "Data-quality faults.")
    resources: ResourcesConfig = section(ResourcesConfig, "Resource sampling.")
    output: OutputConfig = section(OutputConfig, "Local outputs.")
    mqtt: MqttConfig = section(MqttConfig, "Publishing to the fleet collector.")
    outbox: OutboxConfig = section(OutboxConfig, "Durable queue of outgoing messages.")
    alerts: AlertsConfig = section(AlertsConfig, "Alert rules and their state.")
    evidence: EvidenceConfig = section(EvidenceConfig, "Frames kept as evidence on the device.")
    update: UpdateConfig = section(UpdateConfig, "Model updates pushed by the fleet.")
    deployment: DeploymentConfig = section(
        DeploymentConfig, "What the people deploying the model know about it (the deployment "
        "manifest, the birth message; docs/maintenance.md).")


def parse_config(data: dict[str, Any], base_dir: Path | None = None) -> AgentConfig:
    """Validate a parsed TOML mapping; relative paths resolve against ``base_dir``."""
    cfg = build(AgentConfig, data)
    if base_dir is None:
        return cfg
    return _resolve_paths(cfg, base_dir)


def config_warnings(cfg: AgentConfig) -> list[str]:
    """Settings that are valid but probably not meant, one line each."""
    out = []
    f, w = cfg.features, cfg.window
    if f.max_fps > 0 and w.frames == 0 and w.seconds * f.max_fps < cfg.drift.min_frames:
        out.append(
            f"window.seconds ({w.seconds:g}) x features.max_fps ({f.max_fps:g}) allows at "
            f"most {int(w.seconds * f.max_fps)} measured frames per window, fewer than "
            f"drift.min_frames ({cfg.drift.min_frames}): windows get no drift verdict; raise "
            "features.max_fps (0: every frame) or window.seconds"
        )
    return out


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate a TOML configuration file."""
    return parse_config(read_toml(path), Path(path).parent)


def _resolve(base: Path, value: str) -> str:
    if not value or "://" in value or value.isdigit() or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def _resolve_paths(cfg: AgentConfig, base: Path) -> AgentConfig:
    model = dataclasses.replace(
        cfg.model, path=_resolve(base, cfg.model.path), labels=_resolve(base, cfg.model.labels)
    )
    return dataclasses.replace(
        cfg,
        model=model,
        source=dataclasses.replace(cfg.source, uri=_resolve(base, cfg.source.uri)),
        reference=dataclasses.replace(cfg.reference, path=_resolve(base, cfg.reference.path)),
        output=dataclasses.replace(cfg.output, jsonl=_resolve(base, cfg.output.jsonl)),
        outbox=dataclasses.replace(cfg.outbox, path=_resolve(base, cfg.outbox.path)),
        update=dataclasses.replace(cfg.update,
                                   staging_dir=_resolve(base, cfg.update.staging_dir),
                                   public_key=_resolve(base, cfg.update.public_key),
                                   models_dir=_resolve(base, cfg.update.models_dir)),
        alerts=dataclasses.replace(cfg.alerts, state_path=_resolve(base, cfg.alerts.state_path)),
        evidence=dataclasses.replace(
            cfg.evidence, path=_resolve(base, cfg.evidence.path),
            redact=dataclasses.replace(cfg.evidence.redact,
                                       model=_resolve(base, cfg.evidence.redact.model))),
        mqtt=dataclasses.replace(cfg.mqtt, tls=dataclasses.replace(
            cfg.mqtt.tls, ca_file=_resolve(base, cfg.mqtt.tls.ca_file),
            cert_file=_resolve(base, cfg.mqtt.tls.cert_file),
            key_file=_resolve(base, cfg.mqtt.tls.key_file))),
    )
