"""Retrain advisories: per device and per model, whether to retrain, clean the camera or keep
watching, with the evidence (the rule: docs/advisory.md).

:func:`assess` judges one device from its recent summaries and its reference profile;
:func:`advise_fleet` does every device of the store and adds what the devices running the
same model (and the same reference) show;
:class:`~edgewatch.collector.advisory_publish.AdvisoryThread` recomputes it every
``advisory.interval_s`` in the collector and publishes the advisories that changed,
retained, on ``<root>/<fleet>/<device>/advisory`` (:class:`~edgewatch.contracts.Advisory`,
JSON). ``edgewatch fleet advise`` prints the same, ``edgewatch_retrain_advised`` exports it.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec

from edgewatch.collector.performance_estimate import estimate
from edgewatch.collector.store import DeviceState
from edgewatch.config.collector import AdvisoryConfig
from edgewatch.contracts.advisory import Advisory, Estimate, FeatureEvidence, FleetEvidence
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.summary import Summary
from edgewatch.errors import StatsError

log = logging.getLogger(__name__)

CAMERA_FAULTS: dict[str, str] = {
    "decode_error": "check the camera and its cable or stream (frames do not decode)",
    "black": "check the camera (no signal: black frames; lens cap, power, night without IR)",
    "blank": "check the camera (uniform frames: lens cap, covered or dead sensor)",
    "frozen": "check the camera (the picture is frozen)",
    "overexposed": "check the exposure (sun or glare on the lens)",
    "underexposed": "check the exposure or the lighting (too dark)",
    "blurred": "clean the lens, check the focus (blurred: dirt, fog or condensation)",
    "greyscale_switch": "check the camera's day/night (IR) mode",
    "resolution_change": "check the camera's stream settings (resolution changed)",
}
"""Data-quality faults that a person at the camera fixes, with what to do. Model-side faults
(nonfinite_output, inference_error) and empty_output_streak are not among them: they can be
the model's own failure."""
OUTPUT_FEATURES = frozenset({
    "det_count", "score_max", "score_mean", "near_threshold", "box_area", "box_aspect",
    "top1_prob", "margin", "prob_entropy", "classes", "position",
})
"""Features of the model's outputs (docs/features.md); the others describe its input."""
ADVISED = ("watch", "clean", "retrain")
"""Actions that are published; none and insufficient clear the retained advisory."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """The thresholds of the rule (``[advisory]``, docs/advisory.md)."""

    min_windows: int = 6
    min_span_s: float = 3600.0
    quality_share: float = 0.2
    assumed_accuracy: float = 0.9
    margin: float = 0.1
    lookback_windows: int = 360

    @classmethod
    def from_config(cls, cfg: AdvisoryConfig) -> Rule:
        return cls(cfg.min_windows, cfg.min_span_s, cfg.quality_share, cfg.assumed_accuracy,
                   cfg.margin, cfg.lookback_windows)


class AdvisorySource(Protocol):
    """What the advisory reads: :class:`~edgewatch.collector.store.Store` fits."""

    def devices(self) -> list[DeviceState]: ...

    def summaries(self, device: str, limit: int = 20) -> list[Summary]: ...

    def reference(self, device: str, reference_id: str) -> Reference | None: ...


@dataclasses.dataclass(frozen=True)
class ModelAdvisory:
    """One model across the fleet: its devices and what they are advised."""

    model_sha256: str
    model_name: str
    devices: int
    drifting: int
    """Devices in a drift run with clean quality (watch or retrain)."""
    retrain: int
    clean: int
    action: str
    """retrain when a device is advised to, watch when one drifts, else none."""
    fleet_wide: bool
    """At least two devices, and at least half of them, drift with clean quality."""
    advised: tuple[str, ...] = ()
    """The devices advised to retrain."""

    def row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AdvisoryReport:
    """Every device's advisory and every model's, computed at ``time``."""

    time: float
    devices: tuple[Advisory, ...]
    models: tuple[ModelAdvisory, ...]

    def device(self, device: str) -> Advisory | None:
        return next((a for a in self.devices if a.device == device), None)


# --------------------------------------------------------------------------- one device


def _utc(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%SZ")


def _windows(summaries: Iterable[Summary]) -> int:
    return sum(max(s.window.windows, 1) for s in summaries)


def _quality(scope: Sequence[Summary]) -> dict[str, float]:
    """Share of monitored frames per camera fault over ``scope`` (faults seen only)."""
    monitored = sum(s.frames.monitored for s in scope)
    if monitored <= 0:
        return {}
    counts: dict[str, int] = {}
    for s in scope:
        for fault, n in s.quality.items():
            if fault in CAMERA_FAULTS:
                counts[fault] = counts.get(fault, 0) + n
    return {f: min(1.0, n / monitored) for f, n in sorted(counts.items()) if n}


def _features(run: Sequence[Summary]) -> list[FeatureEvidence]:
    found: dict[str, tuple[int, float | None]] = {}
    for s in run:
        assert s.drift is not None
        for name, fd in s.drift.flagged.items():
            if fd.status != "drift":
                continue
            windows, effect = found.get(name, (0, None))
            if fd.effect is not None:
                effect = fd.effect if effect is None else max(effect, fd.effect)
            found[name] = (windows + max(s.window.windows, 1), effect)
    ordered = sorted(found.items(), key=lambda kv: (-kv[1][0], -(kv[1][1] or 0.0), kv[0]))
    return [FeatureEvidence(name, windows, effect,
                            "output" if name in OUTPUT_FEATURES or name.startswith("raw.")
                            else "input")
            for name, (windows, effect) in ordered]


def _evidence(summaries: Iterable[Summary]) -> tuple[int, list[str]]:
    """Evidence frames the summaries report (a field ``evidence``: a count, or an object
    with ``count`` and ``ids``); 0 and none while the summary contract has no such field."""
    count, ids = 0, []
    for s in summaries:
        found = getattr(s, "evidence", None)
        if isinstance(found, int) and not isinstance(found, bool):
            count += found
        elif found is not None:
            count += int(getattr(found, "count", 0) or 0)
            ids += [str(i) for i in getattr(found, "ids", ()) or ()]
    return count, ids[:256]


def _estimate_text(e: Estimate | None) -> str:
    if e is None:
        return "no label-free estimate (no detector or classifier confidence in the reference)"
    text = (f"label-free estimate {e.estimate:.2f} (ATC: {e.share:.0%} of frames with "
            f"{e.feature} >= {e.threshold:.3g}, the reference {e.reference_share:.0%}; "
            f"ratio {e.ratio:.2f})")
    if e.class_js is not None:
        text += f", class mix JS {e.class_js:.2f}"
    return text


def _feature_text(features: Sequence[FeatureEvidence], limit: int = 6) -> str:
    parts = [f"{f.feature} ({f.side}, {f.windows} window(s)"
             + (f", effect {f.effect:.3g}" if f.effect is not None else "") + ")"
             for f in features[:limit]]
    more = len(features) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def assess(device: str, fleet: str, summaries: Sequence[Summary],
           reference: Reference | None, rule: Rule, now: float) -> Advisory:
    """The advisory of one device from its summaries (newest first, as the store answers)
    and the reference profile of the newest one (None when the store has none)."""
    base: dict[str, Any] = {"device": device, "fleet": fleet, "time": now}
    if not summaries:
        return Advisory(action="insufficient", summary="no summary stored", **base)
    current = summaries[0].reference_id
    same: list[Summary] = []
    for s in summaries:  # the windows since the device's reference last changed
        if s.reference_id != current:
            break
        same.append(s)
    base["reference_id"] = current
    if reference is None:
        return Advisory(action="insufficient", summary=(
            f"the collector has no reference profile {current!r} of the device (it is "
            "published retained on <device>/reference)"), **base)
    base.update(model_sha256=reference.model_sha256, model_name=reference.model_name[:4096])
    judged = [s for s in same if s.drift is not None and not s.drift.insufficient]
    if _windows(judged) < rule.min_windows:
        return Advisory(action="insufficient", summary=(
            f"{_windows(judged)} judged window(s) against reference {current}: at least "
            f"{rule.min_windows} needed (advisory.min_windows)"), **base)
    run: list[Summary] = []
    for s in judged:
        assert s.drift is not None
        if s.drift.severity != "drift":
            break
        run.append(s)
    recent: list[Summary] = []
    for s in judged:
        if _windows(recent) >= rule.min_windows:
            break
        recent.append(s)
    scope = run or recent
    quality = _quality(scope)
    try:
        est = estimate(reference, scope, rule.assumed_accuracy)
    except (StatsError, ArithmeticError, ValueError) as exc:
        log.warning("advisory: device %.130r: no estimate: %s", device, exc)
        est = None
    count, ids = _evidence(scope)
    base.update(quality=quality, estimate=est, evidence_frames=count, evidence_ids=ids)
    reasons: list[str] = []
    order = {fault: i for i, fault in enumerate(CAMERA_FAULTS)}  # no signal first on a tie
    worst = max(quality.items(), key=lambda kv: (kv[1], -order[kv[0]]), default=None)
    if run:
        windows = _windows(run)
        span = run[0].window.end - run[-1].window.start
        features = _features(run)
        base.update(since=run[-1].window.start, windows=windows, span_s=span,
                    features=features)
        reasons.append(f"drift for {windows} window(s) over {span:.0f} s since "
                       f"{_utc(run[-1].window.start)}: {_feature_text(features)}")
    if worst is not None and worst[1] >= rule.quality_share:
        faults = ", ".join(f"{f} on {share:.0%}" for f, share in
                           sorted(quality.items(), key=lambda kv: -kv[1])
                           if share >= rule.quality_share)
        reasons.append(f"data quality: {faults} of the monitored frames (at least "
                       f"{rule.quality_share:.0%}, advisory.quality_share): a camera fault, "
                       "not a change of the world")
        reasons.append(_estimate_text(est))
        return Advisory(action="clean", reasons=reasons, summary=(
            f"quality: clean the lens / check the camera: {CAMERA_FAULTS[worst[0]]}; "
            "do not retrain"), **base)
    if not run:
        return Advisory(action="none", reasons=[_estimate_text(est)], summary=(
            "no drift: the latest judged window is "
            f"{(judged[0].drift.severity if judged[0].drift else 'ok')}"), **base)
    reasons.append("data quality clean" + (
        f" (worst: {worst[0]} on {worst[1]:.0%})" if worst is not None else ""))
    reasons.append(_estimate_text(est))
    windows, span = base["windows"], base["span_s"]
    if windows < rule.min_windows or span < rule.min_span_s:
        return Advisory(action="watch", reasons=reasons, summary=(
            f"watch: drift for {windows} window(s) over {span:.0f} s, too short to advise "
            f"(at least {rule.min_windows} windows over {rule.min_span_s:.0f} s)"), **base)
    if est is None:
        return Advisory(action="watch", reasons=reasons, summary=(
            "watch: persistent drift with clean quality, but no label-free estimate to say "
            "whether the model suffers: check evidence frames"), **base)
    if est.ratio <= 1.0 - rule.margin:
        return Advisory(action="retrain", reasons=reasons, summary=(
            f"retrain: the world changed (drift for {windows} windows over {span:.0f} s with "
            f"clean quality) and the model is less sure (ATC ratio {est.ratio:.2f} <= "
            f"{1.0 - rule.margin:.2f}): {_feature_text(base['features'], 3)}"), **base)
    return Advisory(action="watch", reasons=reasons, summary=(
        f"watch: persistent drift with clean quality, but the model's confidence held (ATC "
        f"ratio {est.ratio:.2f} > {1.0 - rule.margin:.2f}); ATC cannot see confident "
        "errors: check evidence frames"), **base)


# --------------------------------------------------------------------------- the fleet


def _drifting(a: Advisory) -> bool:
    return a.action in ("watch", "retrain") and a.windows > 0


def _with_fleet(advisories: list[Advisory]) -> list[Advisory]:
    out = []
    for a in advisories:
        same_model = [b for b in advisories if a.model_sha256 and
                      b.model_sha256 == a.model_sha256]
        same_ref = [b for b in advisories if a.reference_id and
                    b.reference_id == a.reference_id]
        evidence = FleetEvidence(
            model_devices=len(same_model),
            model_drifting=sum(_drifting(b) for b in same_model),
            model_retrain=sum(b.action == "retrain" for b in same_model),
            reference_devices=len(same_ref),
            reference_drifting=sum(_drifting(b) for b in same_ref))
        reasons = list(a.reasons)
        if _drifting(a) and evidence.model_devices > 1:
            reasons.append(
                f"{evidence.model_drifting} of {evidence.model_devices} devices running this "
                f"model ({evidence.reference_drifting} of {evidence.reference_devices} with "
                "this reference) drift with clean quality"
                + (": seen on several devices, stronger evidence of a change of the world"
                   if evidence.model_drifting >= 2 else ": this device alone"))
        out.append(msgspec.structs.replace(a, fleet_evidence=evidence, reasons=reasons[:64]))
    return out


def _models(advisories: Sequence[Advisory]) -> list[ModelAdvisory]:
    groups: dict[str, list[Advisory]] = {}
    for a in advisories:
        if a.model_sha256:
            groups.setdefault(a.model_sha256, []).append(a)
    out = []
    for sha, members in sorted(groups.items()):
        drifting = sum(_drifting(a) for a in members)
        retrain = tuple(sorted(a.device for a in members if a.action == "retrain"))
        action = "retrain" if retrain else "watch" if drifting else "none"
        out.append(ModelAdvisory(
            model_sha256=sha, model_name=members[0].model_name, devices=len(members),
            drifting=drifting, retrain=len(retrain),
            clean=sum(a.action == "clean" for a in members), action=action,
            fleet_wide=drifting >= 2 and 2 * drifting >= len(members), advised=retrain))
    return out


def advise_fleet(store: AdvisorySource, rule: Rule, now: float,
                 device: str | None = None) -> AdvisoryReport:
    """Every device's advisory (or only ``device``'s, still with the fleet's evidence) and
    every model's."""
    advisories = []
    for state in store.devices():
        summaries = store.summaries(state.device, rule.lookback_windows)
        reference = (store.reference(state.device, summaries[0].reference_id)
                     if summaries else None)
        found = assess(state.device, state.fleet, summaries, reference, rule, now)
        if not found.model_sha256 and state.manifest is not None:  # no reference: the birth's
            found = msgspec.structs.replace(found, model_sha256=state.manifest.model_sha256,
                                            model_name=state.manifest.model_name)
        advisories.append(found)
    advisories = _with_fleet(advisories)
    models = _models(advisories)
    if device is not None:
        advisories = [a for a in advisories if a.device == device]
    return AdvisoryReport(now, tuple(advisories), tuple(models))


# --------------------------------------------------------------------------- output


def report_json(report: AdvisoryReport) -> dict[str, Any]:
    return {"time": report.time,
            "devices": [msgspec.to_builtins(a) for a in report.devices],
            "models": [m.row() for m in report.models]}


def report_text(report: AdvisoryReport) -> str:
    """What ``edgewatch fleet advise`` prints."""
    lines = []
    for a in report.devices:
        lines.append(f"{a.device} ({a.fleet}): {a.action.upper()}: {a.summary}")
        lines += [f"  - {r}" for r in a.reasons]
        if a.evidence_frames:
            lines.append(f"  - evidence frames: {a.evidence_frames}"
                         + (f" ({', '.join(a.evidence_ids[:8])})" if a.evidence_ids else ""))
    if not report.devices:
        lines.append("no device")
    for m in report.models:
        lines.append(f"model {m.model_name or m.model_sha256[:12]} ({m.model_sha256[:12]}): "
                     f"{m.action}: {m.retrain} of {m.devices} device(s) advised to retrain, "
                     f"{m.drifting} drifting, {m.clean} to clean"
                     + (" (fleet-wide)" if m.fleet_wide else ""))
    advised = sum(a.action in ADVISED for a in report.devices)
    lines.append(f"{advised} advisor{'ies' if advised != 1 else 'y'} "
                 f"({sum(a.action == 'retrain' for a in report.devices)} retrain)")
    return "\n".join(lines)
