"""The collector's and the operator's commands: ``collector``, ``fleet``, ``alerts``,
``evidence``, ``quarantine`` (``model`` and ``reference``: ``maintenance_commands``).

They import nothing of the agent: they run where only ``edgewatch[collector]`` is installed
(``tests/test_import_boundary.py``). The collector's modules are imported inside the commands.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from edgewatch.cli.common import EXIT_ERROR, stop_on_signals
from edgewatch.cli.parsing import (
    COUNT,
    SECONDS,
    add_command,
    add_subcommands,
    number,
)
from edgewatch.clock import SystemClock
from edgewatch.errors import EdgewatchError

COLLECTOR_CONFIG = "the collector's configuration file (TOML; see configs/collector.toml)"


def add_collector(sub: Any) -> None:
    add_command(sub, "collector", "run the fleet collector",
                "Run the fleet collector: subscribe to the devices' messages on the "
                "broker, store them, keep the fleet's state, serve /metrics and route "
                "alerts, until stopped (Ctrl-C, SIGTERM).",
                fill=_collector_options)


def _collector_options(col: argparse.ArgumentParser) -> None:
    col.add_argument("--config", required=True, help=COLLECTOR_CONFIG)
    col.set_defaults(handler=cmd_collector)


def add_fleet(sub: Any) -> None:
    add_command(sub, "fleet", "fleet state from the collector's store",
                fill=_fleet_options)


def _fleet_options(fleet: argparse.ArgumentParser) -> None:
    fsub = add_subcommands(fleet, "fleet_command")
    fs = add_command(fsub, "status", "a table of the devices: state, last seen, drift verdict, "
                     "active alerts")
    fd = add_command(fsub, "device", "recent windows and drift per feature of one device")
    fd.add_argument("device_id", help="device id")
    fd.add_argument("--windows", type=COUNT, default=12,
                    help="how many recent windows to show (default: 12)")
    fp = add_command(fsub, "prune", "apply the store's retention now ([retention]): "
                         "roll old windows up hourly then daily, delete expired history")
    fp.add_argument("--dry-run", action="store_true",
                    help="say what would be merged and deleted, change nothing")
    fx = add_command(fsub, "decommission", "remove a device from the fleet: out of the "
                         "store's devices and metrics, its alerts closed, its retained "
                         "messages cleared on the broker")
    fx.add_argument("device_id", help="device id")
    fx.add_argument("--purge", action="store_true", help="delete its stored history too")
    fx.add_argument("--timeout", type=SECONDS, default=10.0,
                    help="seconds to wait for the broker (default: 10)")
    fa = add_command(fsub, "advise", "retrain advisories per device and per model: "
                         "retrain, clean the camera, watch, with the evidence "
                         "(docs/advisory.md)")
    fa.add_argument("--device", help="one device (default: every device)")
    for f in (fs, fd, fp, fx, fa):
        f.add_argument("--config", required=True, help=COLLECTOR_CONFIG)
    for f in (fs, fd, fa):
        f.add_argument("--json", action="store_true", help="machine-readable output")
    fleet.set_defaults(handler=cmd_fleet)


def add_alerts(sub: Any) -> None:
    add_command(sub, "alerts", "the fleet's alerts; commands to a device's alerts",
                fill=_alerts_options)


def _alerts_options(al: argparse.ArgumentParser) -> None:
    asub = add_subcommands(al, "alerts_command")
    ls = add_command(asub, "list", "alerts from the collector's store (active unless --all)")
    ls.add_argument("--all", action="store_true", help="resolved alerts too")
    ack = add_command(asub, "ack", "acknowledge an alert: no more reminders")
    snooze = add_command(asub, "snooze", "no reminders for a while")
    for p in (ack, snooze):
        p.add_argument("alert", help="alert id (or rule/subject, or rule name, with --device)")
    snooze.add_argument("seconds", type=SECONDS, help="how long, in seconds")
    on = add_command(asub, "enable", "evaluate a rule again on the device")
    off = add_command(asub, "disable", "stop evaluating a rule on the device")
    thr = add_command(asub, "set-threshold", "change a rule's threshold on the device")
    for p in (on, off, thr):
        p.add_argument("rule", help="the rule's name (alerts rules lists them)")
    thr.add_argument("threshold", type=number(float), help="the new threshold")
    thr.add_argument("--resolve-threshold", type=number(float), metavar="VALUE",
                     help="the value at which the alert resolves (default: the rule's)")
    rules = add_command(asub, "rules", "the device's active alerts and effective rules")
    cmds = add_command(asub, "commands", "commands queued for offline devices: queued, "
                           "sent, answered (with the result) or expired")
    cmds.add_argument("--limit", type=COUNT, default=50,
                      help="the newest commands at most (default: 50)")
    for p in (ls, ack, snooze, on, off, thr, rules, cmds):
        p.add_argument("--config", required=True, help=COLLECTOR_CONFIG)
        p.add_argument("--device", required=p in (on, off, thr, rules),
                       help="device id" + (" (default: every device)"
                                           if p in (ls, cmds) else ""))
        p.add_argument("--json", action="store_true", help="machine-readable output")
    for p in (ack, snooze, on, off, thr, rules):
        p.add_argument("--fleet", help="the device's fleet (default: from the store)")
        p.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                       help="the agents' alerts.command_token "
                            "(default: $EDGEWATCH_COMMAND_TOKEN)")
        p.add_argument("--timeout", type=SECONDS, default=10.0,
                       help="seconds to wait for the device's answer (default: 10)")
    al.set_defaults(handler=cmd_alerts)


def add_evidence(sub: Any) -> None:
    add_command(sub, "evidence", "evidence frames of a device: list them, pull them "
                "into a dataset folder (docs/evidence.md)",
                fill=_evidence_options)


def _evidence_options(ev: argparse.ArgumentParser) -> None:
    esub = add_subcommands(ev, "evidence_command")
    ls = add_command(esub, "list", "the frames the device keeps (it must be online)")
    pl = add_command(esub, "pull", "fetch frames through the collector into a dataset "
                         "folder (YOLO labels, images, sidecars, index.html); resumable, "
                         "queued for an offline device")
    for p in (ls, pl):
        p.add_argument("device", help="device id")
        p.add_argument("--alert", help="frames kept for this alert id")
        p.add_argument("--kind", choices=("alert", "near_threshold", "baseline"),
                       metavar="KIND", help="frames of one trigger kind: alert, "
                                            "near_threshold or baseline")
        p.add_argument("--limit", type=number(int, 1, 500), default=200,
                       help="frames at most (1-500, default: 200)")
        p.add_argument("--config", required=True, help=COLLECTOR_CONFIG)
        p.add_argument("--fleet", help="the device's fleet (default: from the store)")
        p.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                       help="the agents' alerts.command_token "
                            "(default: $EDGEWATCH_COMMAND_TOKEN)")
        p.add_argument("--timeout", type=SECONDS, default=10.0,
                       help="seconds to wait for the device's answer (default: 10)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
    pl.add_argument("--out", help="dataset folder (default: evidence-<device>[-<alert>])")
    pl.add_argument("--wait", type=SECONDS, help="seconds without a new chunk before giving "
                    "up for now (default: [evidence] wait_s)")
    ev.set_defaults(handler=cmd_evidence)


def add_quarantine(sub: Any) -> None:
    add_command(sub, "quarantine", "messages the collector's store refused",
                fill=_quarantine_options)


def _quarantine_options(q: argparse.ArgumentParser) -> None:
    qsub = add_subcommands(q, "quarantine_command")
    ls = add_command(qsub, "list", "quarantined messages, newest first")
    ls.add_argument("--limit", type=COUNT, default=50,
                    help="the newest messages at most (default: 50)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    purge = add_command(qsub, "purge", "delete quarantined messages")
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every quarantined message")
    which.add_argument("--before", metavar="TIME",  # checked by quarantine.parse_time
                       help="those received before this ISO 8601 time (UTC unless it names a "
                            "zone)")
    for p in (ls, purge):
        p.add_argument("--config", required=True, help=COLLECTOR_CONFIG)
    q.set_defaults(handler=cmd_quarantine)


def cmd_collector(args: argparse.Namespace) -> int:
    from edgewatch.collector import gc_settings
    from edgewatch.collector.service import CollectorService
    from edgewatch.config.collector import load_collector_config
    from edgewatch.supervision import Supervisor

    service = CollectorService(load_collector_config(args.config))
    stop_on_signals(service.stop, "stopping the collector")
    gc_settings.for_ingest()  # this process is the collector's: set up, it ingests
    # Under systemd (Type=notify): READY=1 once connected, WATCHDOG=1 while it works.
    service.run(Supervisor.from_environ())
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    import json

    from edgewatch.cli import fleet_text
    from edgewatch.collector import fleet_report as report
    from edgewatch.collector.store import open_store
    from edgewatch.config.collector import load_collector_config

    cfg = load_collector_config(args.config)
    now = SystemClock().now()
    with open_store(cfg.store.url) as store:
        if args.fleet_command == "prune":
            from edgewatch.collector.retention import prune

            print(prune(store, cfg.retention, now, dry_run=args.dry_run).text())
            return 0
        if args.fleet_command == "decommission":
            from edgewatch.collector import decommission as dc

            done, cleared = dc.decommission(store, cfg.mqtt, args.device_id, now,
                                            purge=args.purge, timeout_s=args.timeout)
            print(dc.report(done, cleared, args.purge))
            return 0
        if args.fleet_command == "advise":
            from edgewatch.collector import advisory

            found = advisory.advise_fleet(store, advisory.Rule.from_config(cfg.advisory), now,
                                          device=args.device)
            if args.device is not None and not found.devices:
                raise EdgewatchError(f"unknown device {args.device!r}")
            print(json.dumps(advisory.report_json(found), indent=1) if args.json
                  else advisory.report_text(found))
            return 0
        if args.fleet_command == "status":
            stale = cfg.fleet.stale_after_s
            rows = [report.device_row(d, now, stale) for d in store.devices()]
            print(json.dumps(rows, indent=1) if args.json else fleet_text.status_text(rows, now))
            return 0
        state = store.device(args.device_id)
        if state is None:
            raise EdgewatchError(f"unknown device {args.device_id!r}")
        view = report.device_view(state, store.summaries(args.device_id, args.windows))
    print(json.dumps(view, indent=1) if args.json else fleet_text.device_text(view, now))
    return 0


def _alert_command(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(device command, its arguments) for an ``alerts`` subcommand."""
    name = args.alerts_command
    if name == "ack":
        return name, {"alert": args.alert}
    if name == "snooze":
        return name, {"alert": args.alert, "seconds": args.seconds}
    if name == "set-threshold":
        extra = ({} if args.resolve_threshold is None
                 else {"resolve_threshold": args.resolve_threshold})
        return name, {"rule": args.rule, "threshold": args.threshold, **extra}
    if name == "rules":
        return "list", {}
    return name, {"rule": args.rule}


def cmd_alerts(args: argparse.Namespace) -> int:
    import json

    from edgewatch.collector.operations import (
        alert_rows,
        command_target,
        format_alerts,
        format_commands,
        list_alerts,
        offline_devices,
        queued_message,
        result_row,
        send_or_queue,
    )
    from edgewatch.collector.store import QueuedCommand, open_store
    from edgewatch.config.collector import load_collector_config

    cfg = load_collector_config(args.config)
    now = SystemClock().now()
    if args.alerts_command == "list":
        with open_store(cfg.store.url) as store:
            rows = list_alerts(store, args.device, active_only=not args.all)
            offline = offline_devices(store, now, cfg.fleet.stale_after_s)
        print(json.dumps(alert_rows(rows, offline), indent=1) if args.json
              else format_alerts(rows, offline))
        return 0
    if args.alerts_command == "commands":
        with open_store(cfg.store.url) as store:
            store.expire_commands(now - cfg.commands.expire_s, now)
            kept = store.commands(args.device, limit=args.limit)
        print(json.dumps([c.row() for c in kept], indent=1) if args.json
              else format_commands(kept))
        return 0
    name, command_args = _alert_command(args)
    fleet, device = args.fleet, args.device
    with open_store(cfg.store.url) as store:
        if not (fleet and device):
            known_fleet, device = command_target(store, device, command_args.get("alert"))
            fleet = fleet or known_fleet
        result = send_or_queue(cfg.mqtt, store, fleet, device, name, command_args,
                               timeout_s=args.timeout, token=args.token, now=now)
        if isinstance(result, QueuedCommand):
            print(json.dumps(result.row(), indent=1) if args.json
                  else queued_message(store, result))
            return 0
    if args.json or name == "list":
        print(json.dumps(result_row(result), indent=1))
    else:
        print(f"{device}: {name} " + ("ok" if result.ok else f"refused: {result.error}"))
    return 0 if result.ok else EXIT_ERROR


def cmd_evidence(args: argparse.Namespace) -> int:
    import json

    from edgewatch.collector import evidence_pull as ep
    from edgewatch.collector.evidence import ChunkStore
    from edgewatch.collector.operations import result_row
    from edgewatch.collector.store import open_store
    from edgewatch.config.collector import load_collector_config

    cfg = load_collector_config(args.config)
    with open_store(cfg.store.url) as store:
        if args.evidence_command == "list":
            result = ep.list_frames(cfg, store, args.device, alert=args.alert, kind=args.kind,
                                    fleet=args.fleet, limit=args.limit,
                                    timeout_s=args.timeout, token=args.token)
            print(json.dumps(result_row(result), indent=1) if args.json else
                  ep.format_frames(args.device, result.frames or [],
                                   ChunkStore(cfg.evidence.dir), bool(result.more)))
            return 0
        out = args.out or f"evidence-{args.device}" + (f"-{args.alert}" if args.alert else "")
        report = ep.pull(cfg, store, args.device, out, alert=args.alert, kind=args.kind,
                         fleet=args.fleet, limit=args.limit, timeout_s=args.timeout,
                         wait_s=args.wait, token=args.token, now=SystemClock().now())
    print(json.dumps(report.row(), indent=1) if args.json else report.text())
    return 0 if report.state in ("complete", "queued") else EXIT_ERROR


def cmd_quarantine(args: argparse.Namespace) -> int:
    from edgewatch.collector import quarantine

    print(quarantine.run(args.config, args.quarantine_command,
                         limit=getattr(args, "limit", 50), as_json=getattr(args, "json", False),
                         everything=getattr(args, "all", False),
                         before=getattr(args, "before", None)))
    return 0
