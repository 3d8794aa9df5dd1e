"""The page: one self-contained HTML file (inline CSS, inline SVG, a few lines of inline
script that check every chart drew), opening offline with no request at all."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from edgewatch.report import charts
from edgewatch.report import data as d

CSS = """body{font:13px/1.4 system-ui,sans-serif;margin:0 auto;max-width:760px;padding:12px;
color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:24px;border-bottom:1px solid #ddd}
svg.chart{width:100%;height:auto;display:block;margin:4px 0}svg text{font-size:10px;fill:#333}
table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #ddd;padding:2px 6px;
text-align:left;vertical-align:top}.verdict{display:inline-block;padding:2px 8px;color:#fff;
border-radius:3px}.thumbs img{width:160px;margin:2px}.note{color:#666}"""

CHECK = """(function(){var bad=[],n=0;document.querySelectorAll('svg.chart').forEach(function(s){
var r=s.getBoundingClientRect();n++;if(!s.childElementCount||!(r.width>0&&r.height>0)){
bad.push(s.getAttribute('aria-label'));}});document.body.setAttribute('data-charts',
bad.length?'failed: '+bad.join('; '):'ok '+n);document.title+=bad.length?' [charts failed]':
' [charts ok]';})();"""
"""Run at the end of the body: every chart has children and a nonzero box; the result is
written to ``body[data-charts]`` and the title, where a headless browser's DOM dump sees it."""


def _utc(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _kv(pairs: Mapping[str, str]) -> str:
    return _table(("field", "value"), list(pairs.items()))


def _page(title: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            + "".join(sections) + f"<script>{CHECK}</script></body></html>\n")


def _verdict(severity: str) -> str:
    return (f'<span class="verdict" style="background:{charts.SEVERITY_COLOURS[severity]}">'
            f"{escape(severity)}</span>")


# --------------------------------------------------------------------------- device


def device_html(data: d.DeviceData, now: float | None = None) -> str:
    """The device report's page."""
    s = data.summaries
    cols = d.columns(s)
    axis = (_utc(s[0].window.start), _utc(s[-1].window.end)) if s else ("", "")
    overall = d.worst(s[-1:]) if s else "n/a"
    out = [f"<h1>edgewatch report: {escape(data.device)}</h1>",
           f"<p>{len(s)} window(s), {axis[0]} to {axis[1]} UTC"
           + (f", fleet {escape(data.fleet)}" if data.fleet else "")
           + (f", from {escape(data.source)}" if data.source else "")
           + (f"; made {_utc(now)} UTC" if now is not None else "") + "</p>"]
    counts = {k: sum(d.severity(x) == k for x in s) for k in d.SEVERITY_RANK}
    out.append("<h2>Verdict</h2><p>Latest window: " + _verdict(overall) + " &nbsp; "
               + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + "</p>")
    if cols:
        out.append(charts.strip([("verdict", [charts.SEVERITY_COLOURS[d.worst(c)]
                                              for c in cols])], "verdict timeline", axis))
    out += _drift_sections(data, cols, axis)
    out += _health_sections(s, cols, axis)
    out.append(_alerts(data))
    out.append("<h2>Deployment</h2>" + (_kv(data.manifest) if data.manifest
                                         else '<p class="note">no manifest known</p>'))
    if data.advisory is not None:
        a = data.advisory
        out.append(f"<h2>Advisory</h2><p><b>{escape(a.action)}</b>: {escape(a.summary)}</p>"
                   + "".join(f"<li>{escape(r)}</li>" for r in a.reasons))
    if data.evidence:
        imgs = []
        for path in data.evidence:
            mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
            b64 = base64.b64encode(path.read_bytes()).decode()
            imgs.append(f'<img alt="{escape(path.name)}" src="data:{mime};base64,{b64}">')
        out.append('<h2>Evidence</h2><div class="thumbs">' + "".join(imgs) + "</div>")
    return _page(f"edgewatch report {data.device}", out)


def _drift_sections(data: d.DeviceData, cols: list[list[Any]], axis: tuple[str, str]) -> list[str]:
    out = []
    features = d.drift_features(data.summaries)
    if features and cols:
        rows = [(name, [charts.heat_colour(d.column_effect(c, name)) for c in cols])
                for name in features]
        out.append("<h2>Drift per feature</h2><p class=\"note\">Largest effect per column "
                   "(reference standard deviations; JS distance for label mixes): green "
                   "small, amber at or above 0.3, red at or above 0.5; grey: not measured."
                   "</p>" + charts.strip(rows, "per-feature drift", axis))
    drifted = d.drifted_features(data.summaries)
    ref = data.reference
    if drifted:
        out.append("<h2>Drifted features against the reference</h2>")
        for name in drifted:
            window = d.merged_counts(data.summaries, name)
            numeric = ref.numeric.get(name) if ref is not None else None
            if numeric is None or not window or len(numeric.hist.counts) != len(window):
                out.append(f"<p>{escape(name)}: drifted (no reference histogram to draw)</p>")
                continue
            out.append(f"<h3>{escape(name)}</h3>" + charts.histograms(
                numeric.hist.counts, window, numeric.hist.edges, f"{name} histogram"))
    return out


def _health_sections(s: list[Any], cols: list[list[Any]], axis: tuple[str, str]) -> list[str]:
    if not cols:
        return []
    out = ["<h2>Quality and anomalies</h2>"]
    series = [("anomaly rate", [d.rate(c, "anomaly") for c in cols]),
              ("faulty frames", [d.rate(c, "faults") for c in cols])]
    out.append(charts.lines(series, "quality and anomaly rate", axis=axis))
    kinds = d.quality_kinds(s)
    if kinds:
        out.append("<p>Faults seen: " + ", ".join(
            f"{escape(k)} ({sum(x.quality.get(k, 0) for x in s)} frames)" for k in kinds)
            + "</p>")
    out.append("<h2>Latency</h2>")
    lat = [(f"{stage} p{int(q * 100)}", [d.latency(c, stage, q) for c in cols])
           for stage in d.LATENCY_STAGES for q in (0.5, 0.95)]
    out.append(charts.lines(lat, "latency", " ms", axis))
    res = [(name, [d.resource(c, name) for c in cols])
           for name in ("process_cpu_percent", "memory_percent", "system_cpu_percent")]
    rss = [("process_rss_mb", [d.resource(c, "process_rss_mb") for c in cols])]
    if any(v is not None for _, vs in res for v in vs):
        out.append("<h2>Resources</h2>" + charts.lines(res, "resources (%)", " %", axis))
    if any(v is not None for _, vs in rss for v in vs):
        out.append(charts.lines(rss, "memory (MB)", " MB", axis))
    return out


def _alerts(data: d.DeviceData) -> str:
    rows = [(_utc(a.updated), a.rule, a.state, a.severity, a.subject, a.message)
            for a in sorted(data.alerts, key=lambda a: a.updated)[-50:]]
    out = "<h2>Alerts</h2>" + (_table(("time", "rule", "state", "severity", "subject",
                                       "message"), rows) if rows
                               else '<p class="note">no alert</p>')
    if data.actions:
        keys = sorted({k for row in data.actions for k in row})
        out += "<h3>Operator actions</h3>" + _table(keys, [[r.get(k, "") for k in keys]
                                                           for r in data.actions[:50]])
    return out


# --------------------------------------------------------------------------- fleet


STATE_COLOURS = {"online": "#3a9a4a", "stale": "#e8a317", "offline": "#888888"}


def fleet_html(data: d.FleetData) -> str:
    """The fleet report's page."""
    axis = (_utc(data.span[0]), _utc(data.span[1])) if data.span else ("", "")
    out = [f"<h1>edgewatch fleet report: {escape(data.fleet or 'all fleets')}</h1>",
           f"<p>{len(data.devices)} device(s); made {_utc(data.time)} UTC</p>"]
    states = {k: sum(x.state == k for x in data.devices) for k in STATE_COLOURS}
    severities = {k: sum(x.severity == k for x in data.devices) for k in d.SEVERITY_RANK}
    out.append("<h2>Devices by state</h2>" + charts.bars(
        [(k, float(v), STATE_COLOURS[k]) for k, v in states.items()]
        + [(f"verdict {k}", float(v), charts.SEVERITY_COLOURS[k])
           for k, v in severities.items()], "devices by state"))
    timeline = [(x.device, x.timeline) for x in data.devices if x.timeline]
    if timeline:
        out.append("<h2>Verdicts over time</h2>" + charts.strip(timeline, "fleet verdicts",
                                                                axis))
    out.append("<h2>Devices</h2>" + _table(
        ("device", "fleet", "state", "verdict", "model", "windows", "active alerts",
         "last window end"),
        [(x.device, x.fleet, x.state, x.severity, x.model, x.windows, x.active_alerts,
          _utc(x.last_window_end)) for x in data.devices]))
    out.append("<h2>Outliers against peers</h2>")
    if data.outliers:
        out.append(charts.bars([(f"{o['device']} {o['feature']}", float(o["js"]),
                                 charts.SEVERITY_COLOURS["drift"]) for o in data.outliers[:20]],
                               "peer outliers (JS distance)"))
        out.append(_table(list(data.outliers[0]), [list(o.values()) for o in data.outliers]))
    else:
        out.append('<p class="note">no device stands out from its peers</p>')
    if data.models:
        out.append("<h2>Models</h2>" + _table(list(data.models[0]),
                                               [list(m.values()) for m in data.models]))
    if data.advisories:
        out.append("<h2>Advisories</h2>" + _table(
            ("device", "action", "summary"),
            [(a.device, a.action, a.summary) for a in data.advisories]))
    return _page(f"edgewatch fleet report {data.fleet}", out)
