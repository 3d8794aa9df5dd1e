"""The ``edgewatch`` command: the parser of every command and ``main``.

The commands live by group, each parsing its arguments and calling the library:
``agent_commands`` (check-config, profile, replay, show, run), ``decode``, and
``collector_commands`` (collector, fleet, alerts, quarantine), which import nothing of the
agent.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from edgewatch import __version__
from edgewatch.cli import agent_commands, collector_commands, decode
from edgewatch.cli.common import EXIT_ERROR, EXIT_USAGE
from edgewatch.errors import ConfigError, EdgewatchError

DESCRIPTION = "Monitor ONNX vision models on edge devices and collect the results of a fleet."

COMMANDS = (  # in the order of --help
    agent_commands.add_check_config,
    agent_commands.add_profile,
    agent_commands.add_replay,
    agent_commands.add_show,
    decode.add_decode,
    agent_commands.add_run,
    collector_commands.add_collector,
    collector_commands.add_fleet,
    collector_commands.add_alerts,
    collector_commands.add_quarantine,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgewatch", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"edgewatch {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"edgewatch: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EdgewatchError as exc:
        print(f"edgewatch: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
