"""The ``edgewatch`` command: argument parsing; the library does the work."""

from edgewatch.cli.main import _parser, main

__all__ = ["_parser", "main"]
