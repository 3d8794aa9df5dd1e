"""The collector's and the operator's commands: ``collector``, ``fleet``, ``alerts``,
``evidence``, ``quarantine``.

They import nothing of the agent: they run where only ``edgewatch[collector]`` is installed
(``tests/test_import_boundary.py``). The collector's modules are imported inside the commands.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from typing import Any

from edgewatch.cli.common import EXIT_ERROR, stop_on_signals
from edgewatch.clock import SystemClock
from edgewatch.errors import EdgewatchError


def add_collector(sub: Any) -> None:
    col = sub.add_parser("collector", help="run the fleet collector")
    col.add_argument("--config", required=True)
    col.set_defaults(handler=cmd_collector)


def add_fleet(sub: Any) -> None:
    fleet = sub.add_parser("fleet", help="fleet state from the collector's store")
    fsub = fleet.add_subparsers(dest="fleet_command", required=True)
    fs = fsub.add_parser("status", help="a table of devices")
    fd = fsub.add_parser("device", help="recent windows and drift per feature of one device")
    fd.add_argument("device_id")
    fd.add_argument("--windows", type=int, default=12)
    fp = fsub.add_parser("prune", help="apply the store's retention now ([retention]): "
                         "roll old windows up hourly then daily, delete expired history")
    fp.add_argument("--dry-run", action="store_true",
                    help="say what would be merged and deleted, change nothing")
    fx = fsub.add_parser("decommission", help="remove a device from the fleet: out of the "
                         "store's devices and metrics, its alerts closed, its retained "
                         "messages cleared on the broker")
    fx.add_argument("device_id")
    fx.add_argument("--purge", action="store_true", help="delete its stored history too")
    fx.add_argument("--timeout", type=float, default=10.0,
                    help="seconds to wait for the broker")
    fa = fsub.add_parser("advise", help="retrain advisories per device and per model: "
                         "retrain, clean the camera, watch, with the evidence "
                         "(docs/advisory.md)")
    fa.add_argument("--device", help="one device (default: every device)")
    for f in (fs, fd, fp, fx, fa):
        f.add_argument("--config", required=True, help="collector configuration")
    for f in (fs, fd, fa):
        f.add_argument("--json", action="store_true", help="machine-readable output")
    fleet.set_defaults(handler=cmd_fleet)


def add_alerts(sub: Any) -> None:
    al = sub.add_parser("alerts", help="the fleet's alerts; commands to a device's alerts")
    asub = al.add_subparsers(dest="alerts_command", required=True)
    ls = asub.add_parser("list", help="alerts from the collector's store (active unless --all)")
    ls.add_argument("--all", action="store_true", help="resolved alerts too")
    ack = asub.add_parser("ack", help="acknowledge an alert: no more reminders")
    snooze = asub.add_parser("snooze", help="no reminders for a while")
    for p in (ack, snooze):
        p.add_argument("alert", help="alert id (or rule/subject, or rule name, with --device)")
    snooze.add_argument("seconds", type=float)
    on = asub.add_parser("enable", help="evaluate a rule again on the device")
    off = asub.add_parser("disable", help="stop evaluating a rule on the device")
    thr = asub.add_parser("set-threshold", help="change a rule's threshold on the device")
    for p in (on, off, thr):
        p.add_argument("rule")
    thr.add_argument("threshold", type=float)
    thr.add_argument("--resolve-threshold", type=float)
    rules = asub.add_parser("rules", help="the device's active alerts and effective rules")
    cmds = asub.add_parser("commands", help="commands queued for offline devices: queued, "
                           "sent, answered (with the result) or expired")
    cmds.add_argument("--limit", type=int, default=50)
    for p in (ls, ack, snooze, on, off, thr, rules, cmds):
        p.add_argument("--config", required=True, help="collector configuration")
        p.add_argument("--device", required=p in (on, off, thr, rules),
                       help="device id" + (" (default: every device)"
                                           if p in (ls, cmds) else ""))
        p.add_argument("--json", action="store_true", help="machine-readable output")
    for p in (ack, snooze, on, off, thr, rules):
        p.add_argument("--fleet", help="the device's fleet (default: from the store)")
        p.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                       help="the agents' alerts.command_token "
                            "(default: $EDGEWATCH_COMMAND_TOKEN)")
        p.add_argument("--timeout", type=float, default=10.0,
                       help="seconds to wait for the device's answer")
    al.set_defaults(handler=cmd_alerts)


def add_evidence(sub: Any) -> None:
    ev = sub.add_parser("evidence", help="evidence frames of a device: list them, pull them "
                        "into a dataset folder (docs/evidence.md)")
    esub = ev.add_subparsers(dest="evidence_command", required=True)
    ls = esub.add_parser("list", help="the frames the device keeps (it must be online)")
    pl = esub.add_parser("pull", help="fetch frames through the collector into a dataset "
                         "folder (YOLO labels, images, sidecars, index.html); resumable, "
                         "queued for an offline device")
    for p in (ls, pl):
        p.add_argument("device", help="device id")
        p.add_argument("--alert", help="frames kept for this alert id")
        p.add_argument("--kind", choices=("alert", "near_threshold", "baseline"),
                       help="frames of one trigger kind")
        p.add_argument("--limit", type=int, default=200, help="frames at most (1-500)")
        p.add_argument("--config", required=True, help="collector configuration")
        p.add_argument("--fleet", help="the device's fleet (default: from the store)")
        p.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                       help="the agents' alerts.command_token "
                            "(default: $EDGEWATCH_COMMAND_TOKEN)")
        p.add_argument("--timeout", type=float, default=10.0,
                       help="seconds to wait for the device's answer")
        p.add_argument("--json", action="store_true", help="machine-readable output")
    pl.add_argument("--out", help="dataset folder (default: evidence-<device>[-<alert>])")
    pl.add_argument("--wait", type=float, help="seconds without a new chunk before giving "
                    "up for now (default: [evidence] wait_s)")
    ev.set_defaults(handler=cmd_evidence)


def add_reference(sub: Any) -> None:
    r = sub.add_parser("reference", help="re-baselining: accept a device's recent windows as "
                       "its new normal, push a reference built offline, and the history "
                       "(docs/rebaseline.md)")
    rsub = r.add_subparsers(dest="reference_command", required=True)
    acc = rsub.add_parser("accept", help="build a new reference from the device's stored "
                          "windows (exact merge on its current reference's bins) and send it")
    acc.add_argument("--windows", help="FROM..TO, ISO 8601 or epoch seconds (either side may "
                     "be empty; default: every stored window on the current reference)")
    push = rsub.add_parser("push", help="send a reference profile built offline "
                           "(edgewatch profile build)")
    push.add_argument("--reference", required=True, help="the reference profile JSON")
    for p in (acc, push):
        p.add_argument("--device", required=True, help="device id")
        p.add_argument("--context", default="", help="the context it is for (reference."
                       "contexts[].name; default: the device's main reference)")
        p.add_argument("--by", default=getpass.getuser(),
                       help="who accepts it, for the record (default: your user name)")
        p.add_argument("--note", default="", help="why, for the record")
        p.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                       help="the agents' alerts.command_token "
                            "(default: $EDGEWATCH_COMMAND_TOKEN)")
        p.add_argument("--timeout", type=float, default=10.0,
                       help="seconds to wait for the device's answer")
    hist = rsub.add_parser("history", help="reference changes asked for, who asked, and the "
                           "devices' answers")
    hist.add_argument("--device", help="one device (default: all)")
    for p in (acc, push, hist):
        p.add_argument("--config", required=True, help="collector configuration")
        p.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(handler=cmd_reference)


def cmd_reference(args: argparse.Namespace) -> int:
    from pathlib import Path

    import msgspec

    from edgewatch.collector import reference_ops as ops
    from edgewatch.collector.operations import (
        command_target,
        queued_message,
        result_row,
        send_or_queue,
    )
    from edgewatch.collector.rebaseline import push_arguments, reference_bytes
    from edgewatch.collector.store import QueuedCommand, open_store
    from edgewatch.config.collector import load_collector_config
    from edgewatch.contracts.reference import Reference

    cfg = load_collector_config(args.config)
    now = SystemClock().now()
    with open_store(cfg.store.url) as store:
        if args.reference_command == "history":
            rows = ops.history(store, args.device)
            print(json.dumps(rows, indent=1) if args.json else ops.format_history(rows))
            return 0
        fleet, device = command_target(store, args.device)
        if args.reference_command == "accept":
            new, parts = ops.accept(store, device, args.windows, created=now, by=args.by)
            raw = reference_bytes(new)
            what = f"reference from {len(parts)} accepted windows"
        else:
            raw = Path(args.reference).read_bytes()
            try:
                new = msgspec.json.decode(raw, type=Reference)
            except msgspec.DecodeError as exc:
                raise EdgewatchError(f"{args.reference}: not a reference profile "
                                     f"({str(exc)[:200]})") from exc
            what = f"reference {args.reference}"
        push_args = push_arguments(raw, context=args.context, by=args.by, note=args.note)
        result = send_or_queue(cfg.mqtt, store, fleet, device, ops.PUSH, push_args,
                               timeout_s=args.timeout, token=args.token, now=now)
        if isinstance(result, QueuedCommand):
            print(json.dumps(result.row(), indent=1) if args.json
                  else queued_message(store, result))
            return 0
        record = QueuedCommand(id=str(result.id), device=device, fleet=fleet, name=ops.PUSH,
                               args={k: v for k, v in push_args.items() if k != "reference"},
                               created=now)
        store.queue_command(record)  # the record of who accepted what, and the answer
        store.command_state(record.id, "answered", now, result_row(result))
    if args.json:
        print(json.dumps(result_row(result), indent=1))
    elif result.ok:
        print(f"{device}: {what} is now its reference {result.reference_id} (previous "
              f"{result.previous_reference_id or '-'}; kept on the device)")
    else:
        print(f"{device}: reference.push refused: {result.error}")
    return 0 if result.ok else EXIT_ERROR


def add_model(sub: Any) -> None:
    m = sub.add_parser("model", help="model updates of devices (docs/updates.md)")
    msub = m.add_subparsers(dest="model_command", required=True)
    push = msub.add_parser("push", help="send a new model (and reference, labels) to a device "
                           "or a fleet through the broker: chunked, sha256-verified, "
                           "resumable (push again), staged beside the running model")
    push.add_argument("--device", help="one device (its fleet from the store, or --fleet)")
    push.add_argument("--fleet", help="without --device: every device the collector knows in "
                      "this fleet; with it: the device's fleet")
    push.add_argument("--model", required=True, help="the new ONNX model file")
    push.add_argument("--reference", help="a reference profile built for the new model")
    push.add_argument("--labels", help="its class-name file")
    push.add_argument("--signature", help="a raw Ed25519 signature of the model file (checked "
                      "by devices with update.public_key)")
    push.add_argument("--chunk-kib", type=int, default=64, help="chunk size (4-256 KiB)")
    push.add_argument("--rate-kib", type=float, default=1024.0,
                      help="upper bound on the bytes sent, KiB per second (per push)")
    push.add_argument("--config", required=True, help="collector configuration")
    push.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                      help="the agents' alerts.command_token (default: $EDGEWATCH_COMMAND_TOKEN)")
    push.add_argument("--timeout", type=float, default=10.0,
                      help="seconds to wait for each answer of the device")
    push.add_argument("--json", action="store_true", help="machine-readable output")
    st = msub.add_parser("status", help="where each device's latest model update is (shadow, "
                         "committed, soaking, done, rejected, rolled back) and why: the "
                         "retained update_status messages on the broker")
    st.add_argument("--device", help="one device (default: every device)")
    st.add_argument("--config", required=True, help="collector configuration")
    st.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(handler=cmd_model)


def cmd_model(args: argparse.Namespace) -> int:
    from edgewatch.collector import model_push
    from edgewatch.collector.store import open_store
    from edgewatch.config.collector import load_collector_config

    cfg = load_collector_config(args.config)
    if args.model_command == "status":
        return _model_status(args, cfg.mqtt)
    with open_store(cfg.store.url) as store:
        reports = model_push.push(
            cfg.mqtt, store, model_push.targets(store, args.device, args.fleet), args.model,
            reference=args.reference, labels=args.labels, signature=args.signature,
            chunk_kib=args.chunk_kib, rate_kib_per_s=args.rate_kib, timeout_s=args.timeout,
            token=args.token)
    if args.json:
        print(json.dumps([r.row() for r in reports], indent=1))
    else:
        print("\n".join(r.text() for r in reports))
    return 0 if all(r.state in ("staged", "queued") for r in reports) else EXIT_ERROR


def _model_status(args: argparse.Namespace, mqtt: Any) -> int:
    from edgewatch.collector.update_status import format_statuses, read_statuses, status_row

    rows = read_statuses(mqtt, args.device, timeout_s=args.timeout)
    print(json.dumps([status_row(s) for s in rows], indent=1) if args.json
          else format_statuses(rows))
    return 0


def add_quarantine(sub: Any) -> None:
    q = sub.add_parser("quarantine", help="messages the collector's store refused")
    qsub = q.add_subparsers(dest="quarantine_command", required=True)
    ls = qsub.add_parser("list", help="quarantined messages, newest first")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    purge = qsub.add_parser("purge", help="delete quarantined messages")
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every quarantined message")
    which.add_argument("--before", metavar="ISO_TIME",
                       help="those received before this time (UTC unless it names a zone)")
    for p in (ls, purge):
        p.add_argument("--config", required=True, help="collector configuration")
    q.set_defaults(handler=cmd_quarantine)


def cmd_collector(args: argparse.Namespace) -> int:
    from edgewatch.collector.service import CollectorService
    from edgewatch.config.collector import load_collector_config
    from edgewatch.supervision import Supervisor

    service = CollectorService(load_collector_config(args.config))
    stop_on_signals(service.stop, "stopping the collector")
    # Under systemd (Type=notify): READY=1 once connected, WATCHDOG=1 while it works.
    service.run(Supervisor.from_environ())
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
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
            devices = store.devices()
            if args.json:
                stale = cfg.fleet.stale_after_s
                print(json.dumps([report.device_row(d, now, stale) for d in devices],
                                 indent=1))
            else:
                print(report.status_table(devices, now, cfg.fleet.stale_after_s))
            return 0
        state = store.device(args.device_id)
        if state is None:
            raise EdgewatchError(f"unknown device {args.device_id!r}")
        view = report.device_view(state, store.summaries(args.device_id, args.windows))
    print(json.dumps(view, indent=1) if args.json else report.device_text(view, now))
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
