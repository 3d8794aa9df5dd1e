"""``edgewatch report``: one self-contained HTML file of a replay or run output (with its
reference), or of a device or fleet from the collector's store. The store path imports the
collector only when used: a device without the collector extra reports its own lines."""

from __future__ import annotations

import argparse
from typing import Any

from edgewatch.cli.parsing import add_command, iso_time
from edgewatch.clock import SystemClock
from edgewatch.errors import ConfigError


def add_report(sub: Any) -> None:
    add_command(sub, "report", "write an HTML report of windows, a device or a fleet",
                "Write one self-contained HTML report (it opens offline): of the JSON lines "
                "of a replay or run (--summaries), or of a device or a fleet from the "
                "collector's store (--config).",
                fill=_report_options)


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--summaries", help="JSON lines of a replay or run (summaries and alerts)")
    p.add_argument("--reference", help="the reference profile the summaries were counted on")
    p.add_argument("--config", help="a collector configuration: report from its store")
    p.add_argument("--device", help="with --config: one device's report")
    p.add_argument("--fleet", help="with --config: one fleet's report ('*': every fleet)")
    p.add_argument("--since", type=iso_time,
                   help="with --config: windows ending after this (ISO time, UTC)")
    p.add_argument("--evidence", help="a local evidence folder: thumbnails in the report")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.set_defaults(handler=cmd_report)


def _since(text: str | None) -> float | None:
    import datetime as dt

    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since: not an ISO time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgewatch.report import data, html

    now = SystemClock().now()
    if args.summaries is not None:
        if args.config is not None:
            raise ConfigError("give either --summaries or --config, not both")
        page = html.device_html(data.lines_data(args.summaries, args.reference, args.evidence),
                                now)
    elif args.config is not None:
        if (args.device is None) == (args.fleet is None):
            raise ConfigError("with --config give one of --device or --fleet")
        from edgewatch.collector import report_source
        from edgewatch.collector.store import open_store
        from edgewatch.config.collector import load_collector_config

        cfg = load_collector_config(args.config)
        with open_store(cfg.store.url) as store:
            if args.device is not None:
                found = report_source.device_data(store, cfg, args.device, now,
                                                  _since(args.since))
                found.evidence = data.evidence_files(args.evidence)
                page = html.device_html(found, now)
            else:
                fleet = None if args.fleet == "*" else args.fleet
                page = html.fleet_html(report_source.fleet_data(store, cfg, fleet, now,
                                                                _since(args.since)))
    else:
        raise ConfigError("give --summaries (and --reference) or --config")
    out = Path(args.out)
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({len(page.encode()):,} bytes)")
    return 0
