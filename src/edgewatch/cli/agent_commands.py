"""The device's commands: ``check-config``, ``profile build``, ``replay``, ``show``, ``run``,
``manifest``.

Each parses its arguments and calls ``edgewatch.agent.app``, which wires the agent. The agent's
modules (opencv, onnxruntime) are imported inside the commands, so that the collector and
operator commands run where only ``edgewatch[collector]`` is installed.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from edgewatch.cli.common import EXIT_ERROR, log, stop_on_signals
from edgewatch.cli.parsing import (
    add_command,
    add_subcommands,
    frame_range,
    number,
)
from edgewatch.cli.parsing import timestamp as timestamp_type
from edgewatch.clock import SystemClock, parse_time
from edgewatch.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from edgewatch.config.agent import AgentConfig

CONFIG_HELP = "the agent's configuration file (TOML; see configs/agent.toml)"


def add_check_config(sub: Any) -> None:
    add_command(sub, "check-config", "validate a configuration file and the model it names",
                "Validate an agent or a collector configuration file: every key known and "
                "in range.\nFor an agent configuration, also open its model and run a test "
                "frame through it, unless --no-model is given. Errors name the key; exit "
                "status 2.",
                fill=_check_config_options)


def _check_config_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("config", help="the configuration file (TOML), agent or collector")
    c.add_argument("--kind", choices=("agent", "collector"),
                   help="the kind of configuration (default: told by its sections, e.g. "
                        "[model] for an agent, [store] for a collector)")
    c.add_argument("--no-model", action="store_true",
                   help="check the file only, without opening the model (for a machine that "
                        "does not have it)")
    c.set_defaults(handler=cmd_check_config)


def add_profile(sub: Any) -> None:
    add_command(sub, "profile", "reference profiles: what normal looks like",
                "Reference profiles: the statistics of frames known to be normal, which "
                "every window is compared with.",
                fill=_profile_options)


def _profile_options(prof: argparse.ArgumentParser) -> None:
    psub = add_subcommands(prof, "profile_command")
    b = add_command(psub, "build", "build a reference profile from recorded frames",
                    "Run the model over recorded frames and write the reference profile: the "
                    "bins and statistics of every feature, which windows are compared with.")
    b.add_argument("--config", required=True, help=CONFIG_HELP)
    b.add_argument("--source", required=True,
                   help="a video file or a directory of images (read in file name order)")
    b.add_argument("--out", required=True, help="the reference profile (JSON) to write")
    _source_options(b)
    b.set_defaults(handler=cmd_profile_build)


def add_replay(sub: Any) -> None:
    add_command(sub, "replay", "run the pipeline on recorded input, as fast as possible",
                "Run the monitoring pipeline of 'run' on a recorded video or image folder, "
                "as fast as the machine allows, with timestamps from the file's frame "
                "rate; write one JSON line per window summary and alert "
                "('edgewatch show' prints them as a table).",
                fill=_replay_options)


def _replay_options(r: argparse.ArgumentParser) -> None:
    r.add_argument("--config", required=True, help=CONFIG_HELP)
    r.add_argument("--source", required=True,
                   help="a video file or a directory of images (read in file name order)")
    r.add_argument("--reference", help="the reference profile (default: the configuration's "
                                       "reference.path)")
    r.add_argument("--out", required=True, help="JSON lines file to write ('-' for stdout)")
    r.add_argument("--start", type=timestamp_type,
                   help="timestamp of the first frame, ISO 8601 or epoch seconds "
                        "(default: now)")
    r.add_argument("--allow-drops", action="store_true",
                   help="skip frames when the monitor falls behind, as 'run' does "
                        "(default: wait, so every frame is measured)")
    r.add_argument("--publish", action="store_true",
                   help="also queue summaries in the outbox and publish them to the broker "
                        "of the [mqtt] section")
    r.add_argument("--drain-timeout", type=number(float, 0.0), default=60.0, metavar="SECONDS",
                   help="with --publish: seconds to wait for the outbox to drain at the end "
                        "(default: 60)")
    _source_options(r)
    r.set_defaults(handler=cmd_replay)


def add_show(sub: Any) -> None:
    add_command(sub, "show", "print summaries of a JSON lines file as a table",
                "Print the window summaries and alerts of a replay or run output (JSON "
                "lines) as a table.",
                fill=_show_options)


def _show_options(show: argparse.ArgumentParser) -> None:
    show.add_argument("summaries", help="the JSON lines file ('edgewatch replay --out')")
    show.set_defaults(handler=cmd_show)


def add_run(sub: Any) -> None:
    add_command(sub, "run", "run the agent on its configured live source",
                "Monitor the configured source ([source] uri: a camera, a stream URL or "
                "a file) until stopped (Ctrl-C, SIGTERM): a summary every window, "
                "published to the broker when [mqtt] is enabled and written as JSON lines "
                "to [output] jsonl when set (to stdout when neither is).",
                fill=_run_options)


def _run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--config", required=True, help=CONFIG_HELP)
    run.set_defaults(handler=cmd_run)


def add_manifest(sub: Any) -> None:
    add_command(sub, "manifest", "write the deployment manifest (JSON and Markdown) of "
                "a configuration, its model and its reference",
                fill=_manifest_options)


def _manifest_options(m: argparse.ArgumentParser) -> None:
    m.add_argument("--config", required=True, help=CONFIG_HELP)
    m.add_argument("--reference", help="reference profile (default: the one the agent starts "
                                       "with)")
    m.add_argument("--out", default=".", help="directory to write deployment-manifest.json "
                                              "and .md in (default: the current one)")
    m.set_defaults(handler=cmd_manifest)


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fps", type=number(float, 0.0), default=0.0,
                   help="frame rate for timestamps (default: the file's own)")
    p.add_argument("--frames", type=frame_range, metavar="START:END",
                   help="only these frames (END exclusive; either may be empty), e.g. 0:400")


def _parse_start(text: str | None) -> float:
    if text is None:
        return SystemClock().now()
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ConfigError(f"--start: {exc}") from exc


def _load_agent_config(path: str) -> AgentConfig:
    """The configuration, its warnings logged."""
    from edgewatch.config.agent import config_warnings, load_config

    cfg = load_config(path)
    for warning in config_warnings(cfg):
        log().warning("%s", warning)
    return cfg


def cmd_check_config(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgewatch.config.typed import read_toml

    data, base = read_toml(args.config), Path(args.config).parent
    kind = getattr(args, "kind", None) or config_kind(data, args.config)  # None: by sections
    if kind == "collector":
        print(f"{args.config}: ok (collector: {_collector_essentials(data, base)})")
        return 0
    from edgewatch.config.agent import config_warnings, parse_config

    cfg = parse_config(data, base)  # as load_config(args.config), without reading it again
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


def config_kind(data: dict[str, Any], path: str) -> str:
    """``agent`` or ``collector``, told by the sections only one of them has (``agent`` for
    a file of shared sections alone, such as [mqtt]); ConfigError for a file with both."""
    import dataclasses

    from edgewatch.config.agent import AgentConfig

    agent = {f.name for f in dataclasses.fields(AgentConfig)}
    if agent.issuperset(data):  # an agent's file: no need to load the collector's settings
        return "agent"
    from edgewatch.config.collector import CollectorConfig

    collector = {f.name for f in dataclasses.fields(CollectorConfig)}
    mine = {k for k in data if k in agent - collector}
    theirs = {k for k in data if k in collector - agent}
    if mine and theirs:
        raise ConfigError(f"{path}: agent sections ({', '.join(sorted(mine))}) and collector "
                          f"sections ({', '.join(sorted(theirs))}) in one file; a file "
                          "configures one of them (--kind agent|collector checks it as one)")
    return "collector" if theirs else "agent"


def _collector_essentials(data: dict[str, Any], base: Path) -> str:
    """'store URL, broker host:port, /metrics on host:port' of a collector configuration
    (validated on the way)."""
    from edgewatch.config.collector import parse_collector_config

    cfg = parse_collector_config(data, base)
    metrics = (f"/metrics on {cfg.http.host}:{cfg.http.port}" if cfg.http.port
               else "no /metrics")
    return (f"store {_without_password(cfg.store.url)}, broker {cfg.mqtt.host}:"
            f"{cfg.mqtt.port}, {metrics}")


def _without_password(url: str) -> str:
    """A store URL fit to print, its password masked.

    >>> _without_password("postgresql://ew:secret@db:5432/ew")
    'postgresql://ew:***@db:5432/ew'
    """
    scheme, sep, rest = url.partition("://")
    login, at, host = rest.rpartition("@")
    if not (sep and at and ":" in login):
        return url
    return f"{scheme}://{login.split(':', 1)[0]}:***@{host}"


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
    from edgewatch.agent.app import expected_frames, open_recorded
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.profiling import build_reference
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
        open_recorded,
        replay_config,
    )
    from edgewatch.agent.delivery.sinks import JsonlSink
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.profiling import load_reference
    from edgewatch.agent.progress import Progress
    from edgewatch.agent.window.summary import FrameCounts, WindowSummary

    cfg = replay_config(_load_agent_config(args.config), publish=args.publish)
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
    from edgewatch.agent.app import build_agent, open_live
    from edgewatch.agent.delivery.sinks import JsonlSink
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.agent.profiling import load_reference
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
    log().info("monitoring %s with %s", source.description, engine.model_name)
    # Under systemd (Type=notify): READY=1 at the first frame, WATCHDOG=1 while frames come.
    supervisor = Supervisor.from_environ(clock=clock)
    agent.start()
    try:
        agent.run(source, supervisor=supervisor)
    finally:  # the last windows' acknowledgements, so the next start does not resend them
        supervisor.stopping("stopping: closing the last window")
        agent.close(cfg.mqtt.shutdown_wait_s if cfg.mqtt.enabled else 0.0, only_connected=True)
    return 0
