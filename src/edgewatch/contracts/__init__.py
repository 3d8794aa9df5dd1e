"""The wire contracts: every message and file format edgewatch reads or writes, typed.

Agent and collector both use this package; it imports only :mod:`msgspec`, the standard
library and :mod:`edgewatch.errors`, never either side, so a collector host installs without
opencv or onnxruntime. Decoding (:func:`codec.decode`) is validation: a payload that decodes
is within every bound in :mod:`bounds`.

The names below are imported on first use (:pep:`562`): ``import edgewatch.contracts.topics``
(as the configuration does) must not load msgspec and every message type, which would make
commands such as ``edgewatch check-config`` start slowly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgewatch.contracts.advisory import Advisory
    from edgewatch.contracts.alert import Alert
    from edgewatch.contracts.codec import (
        JSON,
        MSGPACK,
        REASONS,
        Message,
        Rejected,
        decode,
        decode_as,
        decode_collector,
        decode_command,
        encode,
        to_json,
    )
    from edgewatch.contracts.command import Command, CommandResult
    from edgewatch.contracts.reference import Reference
    from edgewatch.contracts.status import Manifest, Status
    from edgewatch.contracts.summary import Summary
    from edgewatch.contracts.summary_v1 import SummaryV1, compact

_WHERE = {  # a name of __all__ -> the module that defines it
    "Advisory": "advisory", "Alert": "alert", "Command": "command",
    "CommandResult": "command", "Reference": "reference", "Manifest": "status",
    "Status": "status", "Summary": "summary", "SummaryV1": "summary_v1",
    "compact": "summary_v1",
    **dict.fromkeys(("JSON", "MSGPACK", "REASONS", "Message", "Rejected", "decode",
                     "decode_as", "decode_collector", "decode_command", "encode", "to_json"),
                    "codec"),
}

__all__ = [
    "JSON", "MSGPACK", "REASONS", "Advisory", "Alert", "Command", "CommandResult", "Manifest",
    "Message",
    "Reference", "Rejected", "Status", "Summary", "SummaryV1", "compact", "decode",
    "decode_as", "decode_collector", "decode_command", "encode", "to_json",
]


def __getattr__(name: str) -> Any:
    """A name of ``__all__`` (or a submodule), imported when first asked for."""
    module = _WHERE.get(name)
    if module is None:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
