"""The ``edgewatch`` command: argument parsing only; the library does the work."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from edgewatch import __version__
from edgewatch.clock import SystemClock
from edgewatch.errors import ConfigError, EdgewatchError

# The agent's modules (opencv, onnxruntime) are imported by the commands that need them, so
# that the collector and operator commands run where only edgewatch[collector] is installed.
if TYPE_CHECKING:
    from edgewatch.agent.app import Agent
    from edgewatch.agent.delivery.assembly import Delivery
    from edgewatch.agent.delivery.sinks import JsonlSink
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.window.monitor import Sink
    from edgewatch.agent.window.reference import ReferenceProfile
    from edgewatch.config.agent import AgentConfig

log = logging.getLogger("edgewatch")

EXIT_ERROR = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgewatch", description=__doc__)
    p.add_argument("--version", action="version", version=f"edgewatch {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check-config", help="validate a configuration file")
    c.add_argument("config")

    prof = sub.add_parser("profile", help="reference profiles")
    psub = prof.add_subparsers(dest="profile_command", required=True)
    b = psub.add_parser("build", help="build a reference profile from recorded frames")
    b.add_argument("--config", required=True)
    b.add_argument("--source", required=True, help="video file or image directory")
    b.add_argument("--out", required=True, help="reference profile JSON to write")
    _source_options(b)

    r = sub.add_parser("replay", help="run the pipeline on recorded input, as fast as possible")
    r.add_argument("--config", required=True)
    r.add_argument("--source", required=True)
    r.add_argument("--reference", help="reference profile (default: reference.path)")
    r.add_argument("--out", required=True, help="JSON lines file to write ('-' for stdout)")
    r.add_argument("--start", help="timestamp of the first frame, ISO 8601 or epoch seconds "
                                   "(default: now)")
    r.add_argument("--allow-drops", action="store_true",
                   help="skip frames when the monitor falls behind, as 'run' does "
                        "(default: wait, so every frame is measured)")
    r.add_argument("--publish", action="store_true",
                   help="also queue summaries in the outbox and publish them to the broker "
                        "of the [mqtt] section")
    r.add_argument("--drain-timeout", type=float, default=60.0,
                   help="with --publish: seconds to wait for the outbox to drain at the end")
    _source_options(r)

    show = sub.add_parser("show", help="print summaries of a JSON lines file as a table")
    show.add_argument("summaries")

    dec = sub.add_parser("decode", help="print MQTT payloads (MessagePack+zlib or JSON) as "
                                        "JSON, checked against the contracts")
    dec.add_argument("file", nargs="?", default="-",
                     help="a payload, or a JSON lines file of them ('-': stdin, the default)")
    dec.add_argument("--leaf", choices=("summary", "alert", "status", "cmd_result",
                                        "reference"),
                     help="the message type (default: from the payload's schema field)")

    run = sub.add_parser("run", help="run the agent on its configured live source")
    run.add_argument("--config", required=True)

    col = sub.add_parser("collector", help="run the fleet collector")
    col.add_argument("--config", required=True)

    fleet = sub.add_parser("fleet", help="fleet state from the collector's store")
    fsub = fleet.add_subparsers(dest="fleet_command", required=True)
    fs = fsub.add_parser("status", help="a table of devices")
    fd = fsub.add_parser("device", help="recent windows and drift per feature of one device")
    fd.add_argument("device_id")
    fd.add_argument("--windows", type=int, default=12)
    for f in (fs, fd):
        f.add_argument("--config", required=True, help="collector configuration")
        f.add_argument("--json", action="store_true", help="machine-readable output")
    _alerts_parser(sub)
    _quarantine_parser(sub)
    return p


def _quarantine_parser(sub: Any) -> None:
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


def _alerts_parser(sub: Any) -> None:
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
    for p in (ls, ack, snooze, on, off, thr, rules):
        p.add_argument("--config", required=True, help="collector configuration")
        p.add_argument("--device", required=p in (on, off, thr, rules),
                       help="device id" + (" (default: every device)" if p is ls else ""))
        p.add_argument("--json", action="store_true", help="machine-readable output")
    for p in (ack, snooze, on, off, thr, rules):
        p.add_argument("--fleet", help="the device's fleet (default: from the store)")
        p.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                       help="the agents' alerts.command_token "
                            "(default: $EDGEWATCH_COMMAND_TOKEN)")
        p.add_argument("--timeout", type=float, default=10.0,
                       help="seconds to wait for the device's answer")


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fps", type=float, default=0.0,
                   help="frame rate for timestamps (default: the file's own)")
    p.add_argument("--frames", help="frame range START:END (END exclusive), e.g. 0:400")


def _parse_start(text: str | None) -> float:
    if text is None:
        return SystemClock().now()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--start: expected ISO 8601 or epoch seconds, got {text!r}") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def _recorded_source(cfg: AgentConfig, args: argparse.Namespace, start: float):  # type: ignore[no-untyped-def]
    from edgewatch.agent.source import open_source, parse_range

    first, last = parse_range(args.frames) if args.frames else (0, None)
    return open_source(args.source, fps=args.fps or cfg.source.fps, start_time=start,
                       first=first, last=last)


def cmd_check_config(args: argparse.Namespace) -> int:
    from edgewatch.config.agent import config_warnings, load_config

    cfg = load_config(args.config)
    print(f"{args.config}: ok (model {cfg.model.path or '-'}, adapter {cfg.model.adapter}, "
          f"window {cfg.window.seconds:g} s)")
    for warning in config_warnings(cfg):
        print(f"edgewatch: warning: {warning}", file=sys.stderr)
    return 0


def _load_agent_config(path: str) -> AgentConfig:
    from edgewatch.config.agent import config_warnings, load_config

    cfg = load_config(path)
    for warning in config_warnings(cfg):
        log.warning("%s", warning)
    return cfg


def cmd_profile_build(args: argparse.Namespace) -> int:
    from edgewatch.agent.app import build_reference
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.config.agent import load_config

    cfg = load_config(args.config)
    engine = InferenceEngine(cfg.model)
    source = _recorded_source(cfg, args, 0.0)
    total = _expected_frames(source)
    profile = build_reference(cfg, engine, source, total=total)
    profile.save(args.out)
    print(f"{args.out}: reference {profile.id} from {profile.frames} frames, "
          f"{len(profile.numeric)} numeric and {len(profile.categorical)} categorical features")
    return 0


def _expected_frames(source: object) -> int | None:
    count = getattr(source, "frame_count", None) or len(getattr(source, "files", []) or [])
    if not count:
        return None
    first = getattr(source, "first", 0)
    last = getattr(source, "last", None)
    end = count if last is None else min(count, last + 1)
    return max(end - first, 0)


def _delivery(cfg: AgentConfig, engine: InferenceEngine, reference: ReferenceProfile,
              config_path: str) -> Delivery:
    from edgewatch.agent.app import device_id
    from edgewatch.agent.delivery.assembly import Delivery

    return Delivery(cfg, reference, device=device_id(cfg), model_name=engine.model_name,
                    model_sha256=engine.model_sha256, config_path=config_path, publish=True)


def _sinks(cfg: AgentConfig, engine: InferenceEngine, jsonl: JsonlSink | None,
           delivery: Delivery | None) -> list[Sink]:
    """Window outputs in order: JSON lines, the outbox, then the alert rules."""
    from edgewatch.agent.delivery.assembly import make_alerting

    alerting = make_alerting(
        cfg, model_sha256=engine.model_sha256, lines=jsonl,
        outbox=delivery.outbox if delivery else None,
        publisher=delivery.publisher if delivery else None,
        commands=delivery.commands if delivery else None)
    return [s for s in (jsonl, delivery.sink if delivery else None, alerting) if s]


def cmd_replay(args: argparse.Namespace) -> int:
    from edgewatch.agent.app import Agent, load_reference
    from edgewatch.agent.delivery.sinks import JsonlSink, Tee
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.progress import Progress

    cfg = _load_agent_config(args.config)
    if not args.publish:  # an offline replay starts from a clean alert state and keeps none
        cfg = dataclasses.replace(cfg, alerts=dataclasses.replace(cfg.alerts,
                                                                  state_path=":memory:"))
    engine = InferenceEngine(cfg.model)
    reference = load_reference(cfg, engine, args.reference)
    source = _recorded_source(cfg, args, _parse_start(args.start))
    jsonl = JsonlSink(stream=sys.stdout) if args.out == "-" else JsonlSink(args.out)
    delivery = _delivery(cfg, engine, reference, args.config) if args.publish else None
    sinks = _sinks(cfg, engine, jsonl, delivery)
    agent = Agent(cfg, engine, reference, Tee(*sinks), live=False,
                  lossless=not args.allow_drops)
    _stop_on_signals(agent)
    if delivery:
        delivery.start()
    try:
        agent.run(source, Progress(_expected_frames(source), "replay"))
    finally:
        jsonl.close()
        drained = delivery.close(args.drain_timeout) if delivery else True
    print(f"{args.out}: {jsonl.lines} lines", file=sys.stderr)
    if not drained:
        print("edgewatch: warning: the outbox did not drain in time; the rest is kept in "
              f"{cfg.outbox.path} and goes out on the next start", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from edgewatch.cli.show import format_table, read_lines

    print(format_table(read_lines(args.summaries)))
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgewatch.contracts import Rejected, to_json
    from edgewatch.contracts.printing import decode_all

    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise EdgewatchError(f"cannot read {args.file}: {exc.strerror}") from exc
    refused = 0
    for line, message in decode_all(raw, args.leaf):
        where = args.file if line is None else f"{args.file}:{line}"
        if isinstance(message, Rejected):
            refused += 1
            print(f"edgewatch: {where}: rejected ({message.reason}): {message.detail}",
                  file=sys.stderr)
        else:
            print(to_json(message, indent=2))
    return EXIT_ERROR if refused else 0


def cmd_run(args: argparse.Namespace) -> int:
    from edgewatch.agent.app import Agent, load_reference
    from edgewatch.agent.delivery.sinks import JsonlSink, Tee
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.source import open_source

    cfg = _load_agent_config(args.config)
    engine = InferenceEngine(cfg.model)
    reference = load_reference(cfg, engine)
    clock = SystemClock()
    source = open_source(cfg.source.uri, fps=cfg.source.fps, clock=clock,
                         initial_backoff=cfg.source.reconnect_initial_s,
                         max_backoff=cfg.source.reconnect_max_s)
    jsonl = None
    if cfg.output.jsonl or not cfg.mqtt.enabled:
        jsonl = JsonlSink(cfg.output.jsonl, mode="a") if cfg.output.jsonl else JsonlSink(
            stream=sys.stdout)
    delivery = _delivery(cfg, engine, reference, args.config) if cfg.mqtt.enabled else None
    sinks = _sinks(cfg, engine, jsonl, delivery)
    agent = Agent(cfg, engine, reference, Tee(*sinks), live=source.live, clock=clock)
    _stop_on_signals(agent)
    log.info("monitoring %s with %s", source.description, engine.model_name)
    if delivery:
        delivery.start()
    try:
        agent.run(source)
    finally:
        if jsonl:
            jsonl.close()
        if delivery:
            delivery.close()
    return 0


def _stop_on_signals(agent: Agent) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: closing the current window", signum)
        agent.stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_collector(args: argparse.Namespace) -> int:
    from edgewatch.collector.service import CollectorService
    from edgewatch.config.collector import load_collector_config

    service = CollectorService(load_collector_config(args.config))

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the collector", signum)
        service.stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    service.run()
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from edgewatch.collector import fleet_report as report
    from edgewatch.collector.store import open_store
    from edgewatch.config.collector import load_collector_config

    cfg = load_collector_config(args.config)
    now = SystemClock().now()
    with open_store(cfg.store.url) as store:
        if args.fleet_command == "status":
            devices = store.devices()
            if args.json:
                print(json.dumps([report.device_row(d) for d in devices], indent=1))
            else:
                print(report.status_table(devices, now))
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
        list_alerts,
        result_row,
        send_command,
    )
    from edgewatch.collector.store import open_store
    from edgewatch.config.collector import load_collector_config

    cfg = load_collector_config(args.config)
    if args.alerts_command == "list":
        with open_store(cfg.store.url) as store:
            rows = list_alerts(store, args.device, active_only=not args.all)
        print(json.dumps(alert_rows(rows), indent=1) if args.json else format_alerts(rows))
        return 0
    name, command_args = _alert_command(args)
    fleet, device = args.fleet, args.device
    if not (fleet and device):
        with open_store(cfg.store.url) as store:
            known_fleet, device = command_target(store, device, command_args.get("alert"))
        fleet = fleet or known_fleet
    result = send_command(cfg.mqtt, fleet, device, name, command_args,
                          timeout_s=args.timeout, token=args.token)
    if args.json or name == "list":
        print(json.dumps(result_row(result), indent=1))
    else:
        print(f"{device}: {name} " + ("ok" if result.ok else f"refused: {result.error}"))
    return 0 if result.ok else EXIT_ERROR


def cmd_quarantine(args: argparse.Namespace) -> int:
    from edgewatch.collector import quarantine

    print(quarantine.run(args.config, args.quarantine_command,
                         limit=getattr(args, "limit", 50), as_json=getattr(args, "json", False),
                         everything=getattr(args, "all", False),
                         before=getattr(args, "before", None)))
    return 0


COMMANDS = {
    "check-config": cmd_check_config,
    "replay": cmd_replay,
    "run": cmd_run,
    "show": cmd_show,
    "decode": cmd_decode,
    "collector": cmd_collector,
    "fleet": cmd_fleet,
    "alerts": cmd_alerts,
    "quarantine": cmd_quarantine,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command = cmd_profile_build if args.command == "profile" else COMMANDS[args.command]
    try:
        return command(args)
    except ConfigError as exc:
        print(f"edgewatch: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EdgewatchError as exc:
        print(f"edgewatch: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
