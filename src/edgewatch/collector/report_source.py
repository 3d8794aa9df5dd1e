"""The report's data from the collector's store: one device's windows, alerts, commands,
manifest and advisory, or a fleet's devices, peer outliers and models
(``edgewatch report --config``, and ``GET /report`` on the collector's HTTP port)."""

from __future__ import annotations

from collections.abc import Callable

from edgewatch.collector.advisory import Rule, advise_fleet
from edgewatch.collector.fleet import counts_as_drifting, device_state_of, peer_outliers
from edgewatch.collector.store import Store
from edgewatch.config.collector import CollectorConfig
from edgewatch.contracts import Summary
from edgewatch.errors import EdgewatchError
from edgewatch.report import data as d
from edgewatch.report.charts import SEVERITY_COLOURS

MAX_WINDOWS = 20_000
"""Windows read per device (two weeks of 60-s windows)."""


def _since(summaries: list[Summary], since: float | None) -> list[Summary]:
    kept = [s for s in summaries if since is None or s.window.end >= since]
    return sorted(kept, key=lambda s: s.window.start)


def device_data(store: Store, cfg: CollectorConfig, device: str, now: float,
                since: float | None = None) -> d.DeviceData:
    state = store.device(device)
    if state is None:
        raise EdgewatchError(f"unknown device {device!r}")
    summaries = _since(store.summaries(device, MAX_WINDOWS), since)
    reference = store.reference(device, summaries[-1].reference_id) if summaries else None
    alerts = [a for a in store.alerts(device, 1000) if since is None or a.updated >= since]
    actions = [{k: str(v) for k, v in d.flatten(c).items() if k in
                ("command_id", "name", "state", "created", "updated", "operator")}
               for c in store.commands(device, limit=50)]
    manifest = d.flatten(state.manifest) if state.manifest is not None else {}
    found = advise_fleet(store, Rule.from_config(cfg.advisory), now, device=device)
    return d.DeviceData(device, summaries, reference, alerts, manifest,
                        found.devices[0] if found.devices else None, actions, fleet=state.fleet)


def fleet_data(store: Store, cfg: CollectorConfig, fleet: str | None, now: float,
               since: float | None = None) -> d.FleetData:
    """A fleet's report (every fleet when ``fleet`` is None)."""
    states = [s for s in store.devices() if fleet is None or s.fleet == fleet]
    if not states:
        raise EdgewatchError(f"no device in fleet {fleet!r}")
    recent = {s.device: _since(store.summaries(s.device, MAX_WINDOWS), since) for s in states}
    spans = [x.window for v in recent.values() for x in v]
    span = (min(w.start for w in spans), max(w.end for w in spans)) if spans else None
    devices = []
    drifting = set()
    for s in states:
        windows = recent[s.device]
        state = device_state_of(s.online, s.last_window_end, s.status_time, now,
                                cfg.fleet.stale_after_s)
        timeline: list[str] = []
        if span is not None and windows:
            width = max(span[1] - span[0], 1e-9)
            cells: list[list[Summary]] = [[] for _ in range(d.MAX_COLUMNS)]
            for x in windows:
                i = min(d.MAX_COLUMNS - 1, int((x.window.start - span[0]) / width * d.MAX_COLUMNS))
                cells[i].append(x)
            timeline = [SEVERITY_COLOURS[d.worst(c)] if c else "#ffffff" for c in cells]
        verdict = d.severity(s.last_summary) if s.last_summary else "n/a"
        if counts_as_drifting(state, verdict):
            drifting.add(s.device)
        model = (s.manifest.model_name if s.manifest is not None else "")
        devices.append(d.FleetDevice(s.device, s.fleet, state,
                                     verdict,
                                     model, len(windows), s.active_alerts, s.last_window_end,
                                     timeline))
    latest = {k: v[-cfg.fleet.peer_windows:] for k, v in recent.items()}
    outliers = [{"device": o.device, "feature": o.feature, "js": round(o.js, 3),
                 "peers": o.peers, "reference": o.reference_id}
                for o in peer_outliers(latest, cfg.fleet.peer_js_threshold)]
    advice = advise_fleet(store, Rule.from_config(cfg.advisory), now)
    advisories = [a for a in advice.devices if fleet is None or a.fleet == fleet]
    models = []
    for m in advice.models:
        row = dict(m.row())
        mine = [a.device for a in advisories if a.model_sha256 == m.model_sha256]
        if mine:
            row["drifting now"] = sum(x in drifting for x in mine)
            models.append(row)
    return d.FleetData(fleet or "", now, devices, outliers, models, advisories, span)


def http_report(cfg: CollectorConfig, now: Callable[[], float]) -> Callable[
        [dict[str, str]], tuple[int, str]]:
    """The collector's ``GET /report?device=D`` (or ``?fleet=F``, ``&since=T`` in seconds
    since the epoch): the same page as ``edgewatch report --config``. Each request opens
    its own store connection (scrapes keep theirs)."""
    from edgewatch.collector.store import open_store
    from edgewatch.report import html

    def report(query: dict[str, str]) -> tuple[int, str]:
        try:
            since = float(query["since"]) if "since" in query else None
        except ValueError:
            return 400, "since: seconds since the epoch\n"
        if ("device" in query) == ("fleet" in query):
            return 400, "give one of device=D or fleet=F\n"
        try:
            with open_store(cfg.store.url) as store:
                if "device" in query:
                    page = html.device_html(device_data(store, cfg, query["device"], now(),
                                                        since), now())
                else:
                    fleet = query["fleet"] if query["fleet"] not in ("", "*") else None
                    page = html.fleet_html(fleet_data(store, cfg, fleet, now(), since))
        except EdgewatchError as exc:
            return 404, f"{exc}\n"
        return 200, page
    return report
