"""The commands of model updates and re-baselining: ``model push``, ``model status``,
``reference accept``, ``reference push``, ``reference rebuild``, ``reference history``
(docs/updates.md, docs/rebaseline.md).

Like the other operator commands they import nothing of the agent; the collector's modules
are imported inside the commands.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from edgewatch.cli.collector_commands import COLLECTOR_CONFIG
from edgewatch.cli.common import EXIT_ERROR
from edgewatch.cli.parsing import SECONDS, add_command, add_subcommands, number, time_span
from edgewatch.clock import SystemClock
from edgewatch.errors import EdgewatchError

if TYPE_CHECKING:
    from edgewatch.contracts.command import CommandResult


def add_reference(sub: Any) -> None:
    add_command(sub, "reference", "re-baselining: accept a device's recent windows as "
                "its new normal, push a reference built offline, and the history "
                "(docs/rebaseline.md)",
                fill=_reference_options)


def _reference_options(r: argparse.ArgumentParser) -> None:
    rsub = add_subcommands(r, "reference_command")
    acc = add_command(rsub, "accept", "build a new reference from the device's stored "
                          "windows (exact merge on its current reference's bins) and send it")
    acc.add_argument("--windows", type=time_span, metavar="FROM..TO",
                     help="the windows to accept, ISO 8601 or epoch seconds (either side may "
                          "be empty; default: every stored window on the current reference)")
    push = add_command(rsub, "push", "send a reference profile built offline "
                           "(edgewatch profile build)")
    push.add_argument("--reference", required=True, help="the reference profile JSON")
    rebuild = add_command(rsub, "rebuild", "have the device profile its next frames into a "
                              "new reference (anomaly model included) and switch to it")
    rebuild.add_argument("--frames", type=int, default=None,
                         help="usable frames to profile (default: the device's "
                              "reference.min_frames; it measures features.max_fps a second)")
    what = rebuild.add_mutually_exclusive_group()
    what.add_argument("--cancel", action="store_true",
                      help="stop the device's rebuild in progress")
    what.add_argument("--status", action="store_true",
                      help="the progress of the device's rebuild, and how its last one ended")
    for p in (acc, push, rebuild):
        p.add_argument("--device", required=True, help="device id")
        p.add_argument("--context", default="", help="the context it is for (reference."
                       "contexts[].name; default: the device's main reference)")
        p.add_argument("--by", help="who accepts it, for the record (default: your user name)")
        p.add_argument("--note", default="", help="why, for the record")
        p.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                       help="the agents' alerts.command_token "
                            "(default: $EDGEWATCH_COMMAND_TOKEN)")
        p.add_argument("--timeout", type=SECONDS, default=10.0,
                       help="seconds to wait for the device's answer (default: 10)")
    hist = add_command(rsub, "history", "reference changes asked for, who asked, and the "
                           "devices' answers")
    hist.add_argument("--device", help="one device (default: all)")
    for p in (acc, push, rebuild, hist):
        p.add_argument("--config", required=True, help=COLLECTOR_CONFIG)
        p.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(handler=cmd_reference)


def cmd_reference(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import msgspec

    from edgewatch.collector import reference_ops as ops
    from edgewatch.collector.operations import command_target, result_row
    from edgewatch.collector.rebaseline import push_arguments, reference_bytes
    from edgewatch.collector.store import open_store
    from edgewatch.config.collector import load_collector_config
    from edgewatch.contracts.reference import Reference

    cfg = load_collector_config(args.config)
    now = SystemClock().now()
    if args.reference_command != "history" and args.by is None:
        import getpass

        args.by = getpass.getuser()
    with open_store(cfg.store.url) as store:
        if args.reference_command == "history":
            rows = ops.history(store, args.device)
            print(json.dumps(rows, indent=1) if args.json else ops.format_history(rows))
            return 0
        fleet, device = command_target(store, args.device)
        if args.reference_command == "rebuild":
            return _rebuild(args, cfg, store, fleet, device, now)
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
        result = _send_recorded(args, cfg, store, fleet, device, ops.PUSH, push_args, now)
        if result is None:
            return 0
    if args.json:
        print(json.dumps(result_row(result), indent=1))
    elif result.ok:
        print(f"{device}: {what} is now its reference {result.reference_id} (previous "
              f"{result.previous_reference_id or '-'}; kept on the device)")
    else:
        print(f"{device}: reference.push refused: {result.error}")
    return 0 if result.ok else EXIT_ERROR


def _send_recorded(args: argparse.Namespace, cfg: Any, store: Any, fleet: str, device: str,
                   name: str, command_args: dict[str, Any], now: float
                   ) -> CommandResult | None:
    """Send a reference command, or queue it for an offline device (printed; None then);
    an answered one is kept in the store with its answer (but a pushed profile's bytes),
    the record of who asked for what (``edgewatch reference history``)."""
    import json

    from edgewatch.collector.operations import queued_message, result_row, send_or_queue
    from edgewatch.collector.store import QueuedCommand

    result = send_or_queue(cfg.mqtt, store, fleet, device, name, command_args,
                           timeout_s=args.timeout, token=args.token, now=now)
    if isinstance(result, QueuedCommand):
        print(json.dumps(result.row(), indent=1) if args.json
              else queued_message(store, result))
        return None
    record = QueuedCommand(id=str(result.id), device=device, fleet=fleet, name=name,
                           args={k: v for k, v in command_args.items() if k != "reference"},
                           created=now)
    store.queue_command(record)
    store.command_state(record.id, "answered", now, result_row(result))
    return result


def _rebuild(args: argparse.Namespace, cfg: Any, store: Any, fleet: str, device: str,
             now: float) -> int:
    """``edgewatch reference rebuild``: the command, queued for an offline device; the
    answer says how many frames the device profiles before it switches."""
    import json

    from edgewatch.collector.operations import result_row
    from edgewatch.collector.reference_ops import REBUILD

    rebuild_args: dict[str, Any] = {"by": args.by, "note": args.note}
    if args.context:
        rebuild_args["context"] = args.context
    if args.cancel or args.status:
        rebuild_args = {"status": True} if args.status else {**rebuild_args, "cancel": True}
    elif args.frames is not None:
        rebuild_args["frames"] = args.frames
    if args.status:  # a question, not a change: neither queued nor recorded
        from edgewatch.collector.command_exchange import send_command

        result: CommandResult | None = send_command(
            cfg.mqtt, fleet, device, REBUILD, rebuild_args, args.timeout, args.token)
    else:
        result = _send_recorded(args, cfg, store, fleet, device, REBUILD, rebuild_args, now)
    if result is None:
        return 0
    if args.json:
        print(json.dumps(result_row(result), indent=1))
    elif not result.ok:
        print(f"{device}: reference.rebuild refused: {result.error}")
    elif args.status:
        now_doing = (f"rebuilding context {result.context}: {result.rebuild_profiled} of "
                     f"{result.rebuild_frames} frames profiled" if result.rebuild_frames
                     else "no rebuild in progress")
        print(f"{device}: {now_doing}; last rebuild: {result.rebuild_outcome or 'none'}")
    elif result.rebuild_frames:
        print(f"{device}: profiling its next {result.rebuild_frames} usable frames of context "
              f"{result.context}; it then switches to the new reference from the next window "
              "(edgewatch fleet device shows the reference its windows use)")
    else:
        print(f"{device}: reference rebuild of context {result.context} cancelled")
    return 0 if result.ok else EXIT_ERROR


def add_model(sub: Any) -> None:
    add_command(sub, "model", "model updates of devices (docs/updates.md)",
                fill=_model_options)


def _model_options(m: argparse.ArgumentParser) -> None:
    msub = add_subcommands(m, "model_command")
    push = add_command(msub, "push", "send a new model (and reference, labels) to a device "
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
    push.add_argument("--chunk-kib", type=number(int, 4, 256), default=64,
                      help="chunk size (4-256 KiB, default: 64)")
    push.add_argument("--rate-kib", type=number(float, above=0.0), default=1024.0,
                      help="upper bound on the bytes sent, KiB per second (per push; "
                           "default: 1024)")
    push.add_argument("--config", required=True, help=COLLECTOR_CONFIG)
    push.add_argument("--token", default=os.environ.get("EDGEWATCH_COMMAND_TOKEN", ""),
                      help="the agents' alerts.command_token (default: $EDGEWATCH_COMMAND_TOKEN)")
    push.add_argument("--timeout", type=SECONDS, default=10.0,
                      help="seconds to wait for each answer of the device (default: 10)")
    push.add_argument("--json", action="store_true", help="machine-readable output")
    st = add_command(msub, "status", "where each device's latest model update is (shadow, "
                         "committed, soaking, done, rejected, rolled back) and why: the "
                         "retained update_status messages on the broker")
    st.add_argument("--device", help="one device (default: every device)")
    st.add_argument("--config", required=True, help=COLLECTOR_CONFIG)
    st.add_argument("--timeout", type=SECONDS, default=10.0,
                    help="seconds to wait for the broker (default: 10)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(handler=cmd_model)


def cmd_model(args: argparse.Namespace) -> int:
    import json

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
    import json

    from edgewatch.collector.update_status import format_statuses, read_statuses, status_row

    rows = read_statuses(mqtt, args.device, timeout_s=args.timeout)
    print(json.dumps([status_row(s) for s in rows], indent=1) if args.json
          else format_statuses(rows))
    return 0
