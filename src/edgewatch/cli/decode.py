"""``edgewatch decode``: MQTT payloads printed as JSON, checked against the contracts.

It needs neither side's packages: it runs on a device and on a collector host alike.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgewatch.cli.common import EXIT_ERROR
from edgewatch.cli.parsing import add_command
from edgewatch.errors import EdgewatchError

LEAVES = ("summary", "alert", "status", "cmd_result", "reference")


def add_decode(sub: Any) -> None:
    add_command(sub, "decode", "print MQTT payloads (MessagePack+zlib or JSON) as "
                "JSON, checked against the contracts",
                fill=_decode_options)


def _decode_options(dec: argparse.ArgumentParser) -> None:
    dec.add_argument("file", nargs="?", default="-",
                     help="a payload, or a JSON lines file of them ('-': stdin, the default)")
    dec.add_argument("--leaf", choices=LEAVES, metavar="TYPE",
                     help=f"the message type: {', '.join(LEAVES)} (default: from the "
                          "payload's schema field)")
    dec.set_defaults(handler=cmd_decode)


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
