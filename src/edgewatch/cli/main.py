"""The ``edgewatch`` command: the parser of every command and ``main``.

The commands live by group, each parsing its arguments and calling the library:
``agent_commands`` (check-config, profile, replay, show, run, manifest), ``decode``,
``collector_commands`` (collector, fleet, alerts, evidence, quarantine) and
``maintenance_commands`` (model, reference); the last two import nothing of the agent.
Building the parser imports only the standard library and these modules; each command imports
what it needs when it runs, so that ``edgewatch --version`` or ``check-config`` start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from edgewatch import __version__
from edgewatch.cli import (
    agent_commands,
    collector_commands,
    decode,
    maintenance_commands,
    report,
)
from edgewatch.cli.common import EXIT_ERROR, EXIT_USAGE, log
from edgewatch.cli.parsing import Formatter, Parser, add_subcommands, add_verbose, subcommands
from edgewatch.errors import ConfigError, EdgewatchError

DESCRIPTION = "Monitor ONNX vision models on edge devices and collect the results of a fleet."
EPILOG = """\
on a device, from a recorded clip to live monitoring:
  edgewatch check-config agent.toml
  edgewatch profile build --config agent.toml --source cam.mp4 --out ref.json
  edgewatch replay --config agent.toml --source cam.mp4 --out windows.jsonl
  edgewatch show windows.jsonl
  edgewatch run --config agent.toml

on the collector's host:
  edgewatch collector --config collector.toml
  edgewatch fleet status --config collector.toml
  edgewatch alerts list --config collector.toml

'edgewatch COMMAND --help' describes a command and its options."""

COMMANDS = (  # in the order of --help
    agent_commands.add_check_config,
    agent_commands.add_profile,
    agent_commands.add_replay,
    agent_commands.add_show,
    decode.add_decode,
    agent_commands.add_run,
    agent_commands.add_manifest,
    collector_commands.add_collector,
    collector_commands.add_fleet,
    collector_commands.add_alerts,
    collector_commands.add_evidence,
    maintenance_commands.add_model,
    maintenance_commands.add_reference,
    collector_commands.add_quarantine,
    report.add_report,
)


def _parser(lazy: bool = False) -> argparse.ArgumentParser:
    """The parser of every command. ``lazy``: each command's options are added only when a
    command line names it (:class:`parsing.Commands`), which is what ``main`` wants; else
    the whole tree is built at once, for the tests and the docs that walk it."""
    p = Parser(prog="edgewatch", description=DESCRIPTION, epilog=EPILOG,
               formatter_class=Formatter)
    p.add_argument("--version", action="version", version=f"edgewatch {__version__}",
                   help="print the version and exit")
    add_verbose(p, False)
    sub = add_subcommands(p, "command")
    for add in COMMANDS:
        add(sub)
    if not lazy:
        subcommands(p)  # completes every command
    return p


EXIT_BROKEN_PIPE = 141
"""The reader of our output went away (``edgewatch fleet status | head``): 128 + SIGPIPE, the
status a shell reports for a program killed by SIGPIPE; nothing is printed."""
EXIT_INTERRUPTED = 130
"""Ctrl-C outside the commands that stop cleanly on it: 128 + SIGINT."""

EXTRAS = {  # a module of an optional dependency -> the extra that installs it
    "prometheus_client": "collector", "psycopg": "collector", "psycopg_binary": "collector",
    "cv2": "agent", "onnxruntime": "agent", "psutil": "agent",
}


def _missing_extra(exc: ModuleNotFoundError, command: str) -> str | None:
    """The one line for a missing optional dependency (None for another missing module)."""
    extra = EXTRAS.get((exc.name or "").split(".")[0])
    if extra is None:
        return None
    return (f"edgewatch {command} needs the {extra} extra: "
            f"pip install 'edgewatch[{extra}]' (missing module {exc.name})")


def _quiet_broken_pipe() -> int:
    """The Python documentation's recipe: stdout to /dev/null, so that the interpreter's
    last flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind stdout (tests)
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; every error ends in one line on stderr and an exit code: 2 for a
    configuration or installation error (not worth restarting), 1 for others, 130 for
    Ctrl-C, 141 when the reader of the output went away. Bugs keep their tracebacks."""
    args = _parser(lazy=True).parse_args(argv)  # --help, --version, usage errors exit here
    import logging  # only now: they need none of it

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("edgewatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        print(f"edgewatch: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EdgewatchError as exc:
        print(f"edgewatch: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as exc:
        line = _missing_extra(exc, args.command)
        if line is None:
            raise
        print(f"edgewatch: {line}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the system refused (permissions, disk, network): not a bug
        log().debug("%s failed", args.command, exc_info=True)
        print(f"edgewatch: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
