"""The device's commands: ``check-config``, ``profile build``, ``replay``, ``show``, ``run``,
``manifest``.

Each parses its arguments and calls ``edgewatch.agent.app``, which wires the agent. The agent's
modules (opencv, onnxruntime) are imported inside the commands, so that the collector and
operator commands run where only ``edgewatch[collector]`` is installed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

from edgewatch.cli.common import EXIT_ERROR, log, stop_on_signals
from edgewatch.clock import SystemClock
from edgewatch.errors import ConfigError

if TYPE_CHECKING:
    from edgewatch.config.agent import AgentConfig


def add_check_config(sub: Any) -> None:
    c = sub.add_parser("check-config", help="validate a configuration file and the model it "
                                            "names")
    c.add_argument("config")
    c.add_argument("--no-model", action="store_true",
                   help="check the file only, without opening the model (for a machine that "
                        "does not have it)")
    c.set_defaults(handler=cmd_check_config)


def add_profile(sub: Any) -> None:
    prof = sub.add_parser("profile", help="reference profiles")
    psub = prof.add_subparsers(dest="profile_command", required=True)
    b = psub.add_parser("build", help="build a reference profile from recorded frames")
    b.add_argument("--config", required=True)
    b.add_argument("--source", required=True, help="video file or image directory")
    b.add_argument("--out", required=True, help="reference profile JSON to write")
    _source_options(b)
    b.set_defaults(handler=cmd_profile_build)


def add_replay(sub: Any) -> None:
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
    r.set_defaults(handler=cmd_replay)


def add_show(sub: Any) -> None:
    show = sub.add_parser("show", help="print summaries of a JSON lines file as a table")
    show.add_argument("summaries")
    show.set_defaults(handler=cmd_show)


def add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run the agent on its configured live source")
    run.add_argument("--config", required=True)
    run.set_defaults(handler=cmd_run)


def add_manifest(sub: Any) -> None:
    m = sub.add_parser("manifest", help="write the deployment manifest (JSON and Markdown) of "
                                        "a configuration, its model and its reference")
    m.add_argument("--config", required=True)
    m.add_argument("--reference", help="reference profile (default: the one the agent starts "
                                       "with)")
    m.add_argument("--out", default=".", help="directory to write deployment-manifest.json "
                                              "and .md in (default: the current one)")
    m.set_defaults(handler=cmd_manifest)


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


def _load_agent_config(path: str) -> AgentConfig:
    """The configuration, its warnings logged."""
    from edgewatch.config.agent import config_warnings, load_config

    cfg = load_config(path)
    for warning in config_warnings(cfg):
        log.warning("%s", warning)
    return cfg


def cmd_check_config(args: argparse.Namespace) -> int:
    from edgewatch.config.agent import config_warnings, load_config

    cfg = load_config(args.config)
    warnings = config_warnings(cfg)
    model = f"model {cfg.model.path or '-'} not checked"
    if not args.no_model:
        warnings += _check_model(cfg)
        model = f"model {cfg.model.path}"
    print(f"{args.config}: ok ({model}, adapter {cfg.model.adapter}, "
          f"window {cfg.window.seconds:g} s)")
    for warning in warnings:
        print(f"edgewatch: warning: {warning}", file=sys.stderr)
    return 0


def _check_model(cfg: AgentConfig) -> list[str]:
    """Open the model and check it against the configuration (as start-up does, plus a test
    frame); the warnings. Errors raise: ModelError (exit 1, as at start-up), ConfigError."""
    from edgewatch.agent.inference.engine import load_session
    from edgewatch.agent.inference.model_check import check_configured_model
    from edgewatch.errors import ModelError

    if not cfg.model.path:
        raise ModelError("model.path is not set (check-config --no-model checks the file "
                         "without a model)")
    return check_configured_model(cfg.model, load_session(cfg.model))


def cmd_profile_build(args: argparse.Namespace) -> int:
    from edgewatch.agent.app import build_reference, expected_frames, open_recorded
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.config.agent import load_config

    cfg = load_config(args.config)
    engine = InferenceEngine(cfg.model)
    source = open_recorded(cfg, args.source, fps=args.fps, frames=args.frames)
    profile = build_reference(cfg, engine, source, total=expected_frames(source))
    profile.save(args.out)
    left_out = "".join(f", {n} {cause}" for cause, n in profile.unusable.items())
    print(f"{args.out}: reference {profile.id} from {profile.frames} frames{left_out}, "
          f"{len(profile.numeric)} numeric and {len(profile.categorical)} categorical features")
    for name, reason in profile.excluded.items():  # what the reference could not learn
        print(f"  {name}: excluded from drift verdicts: {reason}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from edgewatch.agent.app import (
        build_agent,
        expected_frames,
        load_reference,
        offline_config,
        open_recorded,
    )
    from edgewatch.agent.delivery.sinks import JsonlSink
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.progress import Progress
    from edgewatch.agent.window.summary import FrameCounts, WindowSummary

    cfg = _load_agent_config(args.config)
    if not args.publish:
        cfg = offline_config(cfg)
    engine = InferenceEngine(cfg.model)
    reference = load_reference(cfg, engine, args.reference)
    source = open_recorded(cfg, args.source, fps=args.fps, frames=args.frames,
                           start=_parse_start(args.start))
    lines = JsonlSink(stream=sys.stdout) if args.out == "-" else JsonlSink(args.out)
    totals = FrameCounts()

    def count(summary: WindowSummary) -> None:
        totals.merge(summary.frames)

    agent = build_agent(cfg, reference, engine=engine, lines=lines, publish=args.publish,
                        live=False, lossless=not args.allow_drops, config_path=args.config,
                        sink=count)
    stop_on_signals(agent.stop, "closing the current window")
    agent.start()
    try:
        agent.run(source, Progress(expected_frames(source), "replay"))
    finally:
        drained = agent.close(args.drain_timeout)
    if not drained:
        print("edgewatch: warning: the outbox did not drain in time; the rest is kept in "
              f"{cfg.outbox.path} and goes out on the next start", file=sys.stderr)
    bad = totals.decode_errors + totals.inference_errors + totals.nonfinite_outputs
    if totals.seen == 0 or 2 * bad > totals.seen:  # the summaries measure a broken source
        print(f"edgewatch: error: {args.source}: {bad} of {totals.seen} frames unusable "
              f"({totals.decode_errors} undecodable, {totals.inference_errors} inference "
              f"failed, {totals.nonfinite_outputs} NaN or infinite outputs); {args.out}: "
              f"{lines.lines} lines", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.out}: {lines.lines} lines", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from edgewatch.cli.show import format_table, read_lines

    print(format_table(read_lines(args.summaries)))
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from edgewatch.agent.deployment import build_manifest, write_manifest
    from edgewatch.agent.update.files import active_model

    cfg = active_model(_load_agent_config(args.config))  # the model 'run' would start with
    manifest = build_manifest(cfg, config_path=args.config, reference_path=args.reference,
                              now=SystemClock().now())
    json_path, md_path = write_manifest(manifest, args.out)
    print(f"{json_path}, {md_path}: model {manifest['model']['name']} "
          f"{manifest['model']['version'] or '(no model_version)'} sha256 "
          f"{manifest['model']['sha256'][:12]}..., reference {manifest['reference']['id']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edgewatch.agent.app import build_agent, load_reference, open_live
    from edgewatch.agent.delivery.sinks import JsonlSink
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.update.files import active_model
    from edgewatch.supervision import Supervisor

    base = _load_agent_config(args.config)
    cfg = active_model(base)  # the committed version of update.models_dir, if any
    engine = InferenceEngine(cfg.model)
    reference = load_reference(cfg, engine)
    clock = SystemClock()
    source = open_live(cfg, clock)
    lines = None  # with MQTT off, summary lines are the only output: stdout by default
    if cfg.output.jsonl or not cfg.mqtt.enabled:
        lines = JsonlSink(cfg.output.jsonl, mode="a") if cfg.output.jsonl else JsonlSink(
            stream=sys.stdout)
    agent = build_agent(cfg, reference, engine=engine, lines=lines, publish=cfg.mqtt.enabled,
                        live=source.live, clock=clock, config_path=args.config,
                        base_config=base)
    stop_on_signals(agent.stop, "closing the current window")
    log.info("monitoring %s with %s", source.description, engine.model_name)
    # Under systemd (Type=notify): READY=1 at the first frame, WATCHDOG=1 while frames come.
    supervisor = Supervisor.from_environ(clock=clock)
    agent.start()
    try:
        agent.run(source, supervisor=supervisor)
    finally:  # the last windows' acknowledgements, so the next start does not resend them
        supervisor.stopping("stopping: closing the last window")
        agent.close(cfg.mqtt.shutdown_wait_s if cfg.mqtt.enabled else 0.0, only_connected=True)
    return 0
