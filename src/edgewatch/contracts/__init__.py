"""The wire contracts: every message and file format edgewatch reads or writes, typed.

Agent and collector both use this package; it imports only :mod:`msgspec`, the standard
library and :mod:`edgewatch.errors`, never either side, so a collector host installs without
opencv or onnxruntime. Decoding (:func:`codec.decode`) is validation: a payload that decodes
is within every bound in :mod:`bounds`.
"""

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

__all__ = [
    "JSON", "MSGPACK", "REASONS", "Advisory", "Alert", "Command", "CommandResult", "Manifest",
    "Message",
    "Reference", "Rejected", "Status", "Summary", "SummaryV1", "compact", "decode",
    "decode_as", "decode_collector", "decode_command", "encode", "to_json",
]
