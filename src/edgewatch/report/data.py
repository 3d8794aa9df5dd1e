"""What a report shows, gathered from replay or run lines (here) or from the collector's
store (``edgewatch.collector.report_source``), and reduced to what the charts draw: at most
:data:`MAX_COLUMNS` columns in time, each the exact merge of its windows (counts add,
latency sketches merge), so a day of 60-s windows stays far below 1 MB."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from edgewatch.contracts import Advisory, Alert, Reference, Rejected, Summary, SummaryV1, codec
from edgewatch.contracts import compact as compact_v1
from edgewatch.contracts.summary import undelta_keys
from edgewatch.errors import EdgewatchError
from edgewatch.stats.sketch import LogSketch

MAX_COLUMNS = 240
"""Columns of the time charts (a day of 60-s windows: 6 windows per column)."""
SEVERITY_RANK = {"n/a": 0, "ok": 1, "warning": 2, "drift": 3}
LATENCY_STAGES = ("inference_ms", "total_ms")
THUMBNAILS = 8
THUMBNAIL_BYTES = 150_000
"""Evidence files larger than this are left out (the report stays small)."""


@dataclass
class DeviceData:
    """One device's windows (oldest first, schema 2) and what goes with them."""

    device: str
    summaries: list[Summary]
    reference: Reference | None = None
    alerts: list[Alert] = field(default_factory=list)
    manifest: dict[str, str] = field(default_factory=dict)
    advisory: Advisory | None = None
    actions: list[dict[str, str]] = field(default_factory=list)
    """Operator actions where stored (commands sent to the device): key/value rows."""
    evidence: list[Path] = field(default_factory=list)
    fleet: str = ""
    source: str = ""


@dataclass
class FleetDevice:
    device: str
    fleet: str
    state: str
    severity: str
    model: str
    windows: int
    active_alerts: int
    last_window_end: float | None
    timeline: list[str] = field(default_factory=list)
    """Worst verdict per column of the fleet's time axis."""


@dataclass
class FleetData:
    fleet: str
    time: float
    devices: list[FleetDevice]
    outliers: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    advisories: list[Advisory] = field(default_factory=list)
    span: tuple[float, float] | None = None


class _Line(msgspec.Struct):
    type: str = ""


def read_records(path: str | Path) -> tuple[list[Summary], list[Alert]]:
    """The summary lines (schema 2, oldest first) and alert lines of a replay or run file."""
    summaries: list[Summary] = []
    alerts: list[Alert] = []
    try:
        with open(path, "rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    kind = codec.decode_as(_Line, line, codec.JSON).type
                    if kind == "summary":
                        summaries.append(compact_v1(codec.decode_as(SummaryV1, line, codec.JSON)))
                    elif kind == "alert":
                        fields = codec.decode_as(dict[str, Any], line, codec.JSON)
                        fields.pop("type", None)
                        alerts.append(msgspec.convert(fields, Alert))
                except (Rejected, msgspec.ValidationError) as exc:
                    raise EdgewatchError(f"{path}:{number}: not a summary or alert line "
                                         f"({str(exc)[:200]})") from None
    except OSError as exc:
        raise EdgewatchError(f"cannot read {path}: {exc.strerror}") from exc
    summaries.sort(key=lambda s: s.window.start)
    return summaries, alerts


def read_reference(path: str | Path) -> Reference:
    try:
        reference: Reference = msgspec.json.decode(Path(path).read_bytes(), type=Reference)
    except OSError as exc:
        raise EdgewatchError(f"cannot read {path}: {exc.strerror}") from exc
    except msgspec.DecodeError as exc:
        raise EdgewatchError(f"{path}: not a reference profile ({exc})") from None
    return reference


def evidence_files(folder: str | Path | None, limit: int = THUMBNAILS) -> list[Path]:
    """The newest JPEG/PNG files of an evidence folder small enough to embed (none without
    a folder)."""
    if folder is None:
        return []
    root = Path(folder)
    if not root.is_dir():
        raise EdgewatchError(f"evidence folder {root} does not exist")
    found = [p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
             and p.is_file() and p.stat().st_size <= THUMBNAIL_BYTES]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:limit]


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Any structure as key/value text rows (nested keys joined by dots), for the manifest
    table: whatever fields the manifest holds are shown."""
    data = msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
    out: dict[str, str] = {}
    if isinstance(data, Mapping):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(data, list) and data and isinstance(data[0], Mapping | list):
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        key = prefix[:-1] or "value"
        out[key] = ", ".join(map(str, data)) if isinstance(data, list) else str(data)
    return out


def lines_data(summaries_path: str | Path, reference_path: str | Path | None,
               evidence: str | Path | None = None) -> DeviceData:
    """A device report of a replay or run output and its reference profile."""
    summaries, alerts = read_records(summaries_path)
    if not summaries:
        raise EdgewatchError(f"{summaries_path}: no summary line")
    reference = read_reference(reference_path) if reference_path is not None else None
    manifest: dict[str, str] = {}
    if reference is not None:
        manifest = {k: v for k, v in flatten(reference).items()
                    if k.split(".")[0] not in ("numeric", "categorical", "anomaly", "samples",
                                               "excluded", "schema")}
    device = summaries[-1].device or Path(summaries_path).stem
    return DeviceData(device, summaries, reference, alerts, manifest,
                      evidence=evidence_files(evidence), source=str(summaries_path))


# --------------------------------------------------------------------------- reductions


def columns(summaries: Sequence[Summary], limit: int = MAX_COLUMNS) -> list[list[Summary]]:
    """Consecutive windows grouped into at most ``limit`` columns."""
    if not summaries:
        return []
    per = math.ceil(len(summaries) / limit)
    return [list(summaries[i:i + per]) for i in range(0, len(summaries), per)]


def severity(summary: Summary) -> str:
    d = summary.drift
    return "n/a" if d is None or d.insufficient else d.severity


def worst(column: Iterable[Summary]) -> str:
    return max((severity(s) for s in column), key=SEVERITY_RANK.__getitem__, default="n/a")


def effect_of(summary: Summary, feature: str) -> float | None:
    d = summary.drift
    if d is None:
        return None
    flagged = d.flagged.get(feature)
    if flagged is not None and flagged.effect is not None:
        return flagged.effect
    return d.effects.get(feature)


def column_effect(column: Iterable[Summary], feature: str) -> float | None:
    found = [e for e in (effect_of(s, feature) for s in column) if e is not None]
    return max(found) if found else None


def drift_features(summaries: Iterable[Summary]) -> list[str]:
    """Every feature with an effect in some window, those ever flagged first."""
    names: dict[str, int] = {}
    for s in summaries:
        if s.drift is None:
            continue
        for name in s.drift.effects:
            names.setdefault(name, 0)
        for name, f in s.drift.flagged.items():
            names[name] = max(names.get(name, 0), SEVERITY_RANK[f.status])
    return sorted(names, key=lambda n: (-names[n], n))


def drifted_features(summaries: Iterable[Summary]) -> list[str]:
    """Features whose status was drift in at least one window."""
    found = {n for s in summaries if s.drift is not None
             for n, f in s.drift.flagged.items() if f.status == "drift" or f.drifted}
    return sorted(found)


def merged_counts(summaries: Iterable[Summary], feature: str) -> list[int]:
    """The feature's bin counts summed over the windows where it drifted (exact merge)."""
    total: list[int] = []
    for s in summaries:
        d = s.drift
        flagged = d.flagged.get(feature) if d is not None else None
        numeric = s.features.get(feature)
        if flagged is None or numeric is None or not (flagged.status == "drift"
                                                      or flagged.drifted):
            continue
        if not total:
            total = [0] * len(numeric.counts)
        if len(numeric.counts) == len(total):
            total = [a + b for a, b in zip(total, numeric.counts)]
    return total


def latency(column: Iterable[Summary], stage: str, q: float) -> float | None:
    """The quantile of a stage's latency over the column (sketches merged exactly)."""
    merged: LogSketch | None = None
    for s in column:
        sk = s.latency.get(stage)
        if sk is None or not sk.n:
            continue
        part = LogSketch.from_dict({"accuracy": sk.accuracy, "count": sk.n, "zero": sk.zero,
                                    "max": sk.max, "keys": undelta_keys(sk.keys),
                                    "counts": sk.counts})
        if merged is None:
            merged = part
        else:
            merged.merge(part)
    return None if merged is None else merged.quantile(q)


def rate(column: Iterable[Summary], part: str) -> float | None:
    """Quality faults (all kinds) or anomalies per monitored/scored frame over a column."""
    num = den = 0
    for s in column:
        if part == "anomaly":
            num, den = num + s.anomaly.frames, den + s.anomaly.scored
        else:
            num += s.quality.get(part, 0) if part != "faults" else sum(s.quality.values())
            den += s.frames.monitored
    return num / den if den else None


def resource(column: Iterable[Summary], name: str) -> float | None:
    values = [getattr(s.resources, name) for s in column]
    found = [float(v) for v in values if v is not None]
    return sum(found) / len(found) if found else None


def quality_kinds(summaries: Iterable[Summary]) -> list[str]:
    return sorted({k for s in summaries for k in s.quality})
