"""The parser's building blocks: one-line usage errors, commands with a description, the
global options every command accepts, and the types that check option values.

It imports only the standard library: building the parser of every command must stay cheap
(``edgewatch --version`` starts in well under 150 ms). A malformed value is an argparse type
error, so every usage error ends the same way: one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

from edgewatch.cli.common import EXIT_USAGE
from edgewatch.clock import parse_time


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr, exit status 2, and
    whose options may be added when it is first used (``fill``)."""

    fill: Callable[[argparse.ArgumentParser], None] | None = None
    """Adds this command's options and subcommands; run once, by :meth:`complete`."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")

    def complete(self) -> Parser:
        """This parser with its options (``fill`` run if it has not been)."""
        fill, self.fill = self.fill, None
        if fill is not None:
            fill(self)
        return self


class Formatter(argparse.HelpFormatter):
    """Descriptions keep their line breaks, each line wrapped to the terminal's width;
    command names up to ``check-config`` on the same line as their summary."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)
        self._action_max_length = 20

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return "\n".join(textwrap.fill(line, width, initial_indent=indent,
                                       subsequent_indent=indent + " " * _hanging(line))
                         for line in text.splitlines())


def _hanging(line: str) -> int:
    """The indent of a wrapped line's continuation: its own indent, plus 2 if indented."""
    lead = len(line) - len(line.lstrip())
    return lead + 2 if lead else 0


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The subcommands of a parser; the chosen one gets its options (:meth:`Parser.complete`)
    just before it parses the rest of the line. Adding the options of every command costs
    more than the rest of ``edgewatch --version`` (argparse makes a help formatter and looks
    up translations for each option), so a command line builds only the command it runs."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        chosen = self._name_parser_map.get(values[0])
        if isinstance(chosen, Parser):
            chosen.complete()
        super().__call__(parser, namespace, values, option_string)


def add_command(sub: Any, name: str, summary: str, description: str = "",
                fill: Callable[[argparse.ArgumentParser], None] | None = None,
                **kwargs: Any) -> argparse.ArgumentParser:
    """A command: ``summary`` in its parent's list of commands, ``description`` (default: the
    summary as a sentence) at the top of its own ``--help``, ``-v`` (see :func:`add_verbose`)
    and, when it is used, the options ``fill`` adds."""
    text = description or summary[:1].upper() + summary[1:].rstrip(".") + "."
    parser: Parser = sub.add_parser(name, help=summary, description=text,
                                    formatter_class=Formatter, **kwargs)
    add_verbose(parser, argparse.SUPPRESS)
    parser.fill = fill
    return parser


def add_subcommands(parser: argparse.ArgumentParser, dest: str) -> Any:
    """The subcommands of ``parser`` (one is required), listed as ``COMMAND``."""
    return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND",
                                 title="commands", action=Commands)


def add_verbose(parser: argparse.ArgumentParser, default: Any) -> None:
    """``-v`` on the top parser (``default`` False) and on every command (``default``
    SUPPRESS: a command line without it after the command keeps the top's value), so that
    it goes anywhere on the line."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log debug messages (accepted before or after the command)")


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command below ``parser``, complete, depth first, as (``edgewatch fleet device``,
    parser)."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases: once each
                if isinstance(child, Parser):
                    child.complete()
                out.append((child.prog, child))
                out += subcommands(child)
    return out


# --------------------------------------------------------------------------- value types


def frame_range(text: str) -> str:
    """``START:END`` (END exclusive; either may be empty): the text, checked."""
    first, sep, last = text.partition(":")
    try:
        a = int(first) if first else 0
        b = int(last) if last else None
    except ValueError:
        a, b = -1, None
    if not sep or a < 0 or (b is not None and b <= a):
        raise argparse.ArgumentTypeError(
            f"expected a frame range START:END with 0 <= START < END, e.g. 0:400, got {text!r}")
    return text


def timestamp(text: str) -> str:
    """A time :func:`parse_time` reads: the text, checked."""
    try:
        parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def iso_time(text: str) -> str:
    """An ISO 8601 time (UTC unless it names a zone): the text, checked."""
    import datetime as dt

    try:
        dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time such as "
                                         f"2026-01-31T12:00:00, got {text!r}") from None
    return text


def time_span(text: str) -> str:
    """``FROM..TO``, each side a :func:`parse_time` time or empty: the text, checked."""
    first, sep, last = text.partition("..")
    try:
        if not sep:
            raise ValueError(f"expected FROM..TO, got {text!r}")
        a = parse_time(first) if first.strip() else None
        b = parse_time(last) if last.strip() else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if a is not None and b is not None and b <= a:
        raise argparse.ArgumentTypeError(f"{text!r}: TO must be after FROM")
    return text


def number(kind: Callable[[str], float], low: float | None = None,
           high: float | None = None, *, above: float | None = None) -> Callable[[str], Any]:
    """A type for an int or float option within bounds: ``low <= x <= high``, ``x > above``."""

    def check(text: str) -> Any:
        name = "an integer" if kind is int else "a finite number"
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
        if not math.isfinite(value) or (low is not None and value < low) or (
                high is not None and value > high) or (above is not None and value <= above):
            raise argparse.ArgumentTypeError(f"expected {name}{_bounds(low, high, above)}, "
                                             f"got {text!r}")
        return value

    check.__name__ = kind.__name__  # argparse names the type in its message
    return check


def _bounds(low: float | None, high: float | None, above: float | None) -> str:
    if above is not None:
        return f" above {above:g}"
    if low is None:
        return ""
    if high is None:
        return f" of at least {low:g}"
    return f" from {low:g} to {high:g}"


SECONDS = number(float, above=0.0)
"""A positive duration in seconds."""
COUNT = number(int, 1)
"""A positive number of things."""

