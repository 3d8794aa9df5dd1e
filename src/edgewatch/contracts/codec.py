"""Encoding and decoding messages: the one boundary where bytes become contract types.

Two encodings, named on the wire by the MQTT 5 ``content-type`` property (and recognised from
their first bytes when a message has none, as under MQTT 3.1.1):

- ``application/json``: the contract types as JSON objects, for people and old devices;
- ``application/vnd.edgewatch.msgpack+zlib`` (the default): MessagePack deflated with zlib and
  a preset dictionary of the contracts' words (:data:`WIRE_WORDS`). The dictionary's Adler-32
  is in the zlib header, so a future dictionary can be added beside this one.

Decoding validates everything :mod:`edgewatch.contracts.bounds` bounds and refuses unknown
fields; a refused payload raises :class:`Rejected` with one of the :data:`REASONS` labels and a
detail that never holds more than a short, printable excerpt of the payload.
"""

from __future__ import annotations

import functools
import re
import zlib
from typing import Any

import msgspec

from edgewatch.contracts.advisory import Advisory
from edgewatch.contracts.alert import Alert
from edgewatch.contracts.command import (
    MAX_COMMAND_BYTES,
    Command,
    CommandResult,
    Values,
)
from edgewatch.contracts.command import (
    SCHEMA as COMMAND_SCHEMA,
)
from edgewatch.contracts.evidence import EvidenceChunk
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.status import Status
from edgewatch.contracts.summary import Summary
from edgewatch.contracts.summary_v1 import SummaryV1, compact
from edgewatch.contracts.update_status import UpdateStatus
from edgewatch.errors import EdgewatchError

JSON = "application/json"
MSGPACK = "application/vnd.edgewatch.msgpack+zlib"
ENCODINGS = {"msgpack": MSGPACK, "json": JSON}
"""Configuration names (``mqtt.encoding``) of the content types."""

MAX_WIRE_BYTES = 1024 * 1024
"""Largest payload accepted as received."""
MAX_DECODED_BYTES = 4 * 1024 * 1024
"""Largest payload after decompression."""

REASONS: dict[str, str] = {
    "topic": "the topic is not <root>/<fleet>/<device>/<leaf> with a known leaf",
    "size": f"more than {MAX_WIRE_BYTES} bytes received or {MAX_DECODED_BYTES} decompressed",
    "encoding": "not JSON or compressed MessagePack, truncated, or an unknown content type",
    "depth": "nested deeper than any message allows",
    "schema": "no schema, or a schema that is not the topic's",
    "invalid": "a field is missing, unknown, of the wrong type or out of its bounds",
    "device": "the payload names another device than its topic",
    "store": "decoded, but the store refused it: kept in quarantine",
}
"""Why a payload is refused: the only values of the ``reason`` metric label."""

class _Unknown(msgspec.Struct, tag_field="schema", tag="edgewatch.unknown/0"):
    """Never sent: in a union with a message type, it makes the ``schema`` tag required."""


Message = Summary | Alert | Status | CommandResult | Reference | EvidenceChunk
DEVICE_MESSAGES: dict[str, Any] = {
    "summary": Summary | SummaryV1,
    "alert": Alert | _Unknown,
    "status": Status | _Unknown,
    "cmd_result": CommandResult | _Unknown,
    "reference": Reference | _Unknown,
    "evidence": EvidenceChunk | _Unknown,
    "update_status": UpdateStatus | _Unknown,
}
"""The type a device message decodes into, by topic leaf."""
COLLECTOR_MESSAGES: dict[str, Any] = {
    "advisory": Advisory | _Unknown,
}
"""The type a message the collector publishes decodes into, by topic leaf (JSON on the
wire: dashboards and people read them)."""

WIRE_WORDS = (
    # field names of the contracts, then the feature and stage names devices measure
    b"schema edgewatch.summary/2 window start end windows reference_id frames seen monitored "
    b"dropped sampled_out decode_errors nonfinite_outputs inference_errors device boot_id seq "
    b"features labels counts missing latency resources process_cpu_percent process_rss_mb "
    b"process_peak_rss_mb system_cpu_percent memory_percent disk_percent disk_free_mb "
    b"temperatures_c quality quality_onsets anomaly scored threshold score_sum score_max drift "
    b"severity ok warning score detected insufficient reasons effects flagged effect p "
    b"p_adjusted status streak drifted psi ks ks_p wasserstein mean_shift js n_eff outbox "
    b"pending in_memory degraded historical merged_seqs loss compacted evicted rejected "
    b"summary alert cmd_result preprocess_ms inference_ms postprocess_ms total_ms monitor_ms "
    b"black blank frozen overexposed underexposed blurred empty_output_streak classes position "
    b"r0c0 r0c1 r0c2 r1c0 r1c1 r1c2 r2c0 r2c1 r2c2 person car top1 top1_score margin "
    b"box_area box_aspect bright_fraction brightness cast_green_magenta cast_red_blue contrast "
    b"dark_fraction det_count edge_density entropy greyscale height near_threshold noise "
    b"saturation score_mean sharpness width"
)
"""The preset dictionary of the compressed encoding: words that recur in every summary."""
_DICTIONARIES = {zlib.adler32(WIRE_WORDS): WIRE_WORDS}
_FDICT = 0x20

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


class Rejected(EdgewatchError):
    """A payload that does not decode into its contract; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def content_type(encoding: str) -> str:
    """The content type of a configured encoding ('msgpack' or 'json')."""
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"unknown encoding {encoding!r}: expected msgpack or json") from None


def encode(message: msgspec.Struct | dict[str, Any], encoding: str = "msgpack") -> bytes:
    """The payload bytes of a message in an encoding ('msgpack' or 'json')."""
    if content_type(encoding) == JSON:
        return _json_encoder.encode(message)
    packer = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, WIRE_WORDS)
    return packer.compress(_msgpack_encoder.encode(message)) + packer.flush()


def to_json(message: msgspec.Struct, indent: int = 0) -> str:
    """A message as JSON text for people."""
    text = _json_encoder.encode(message)
    return (msgspec.json.format(text, indent=indent) if indent else text).decode()


def sniff(raw: bytes) -> str:
    """The content type of a payload that does not name one."""
    head = raw.lstrip()[:1]
    if head in (b"{", b"["):
        return JSON
    if len(raw) >= 2 and raw[0] & 0x0F == 8 and (raw[0] << 8 | raw[1]) % 31 == 0:
        return MSGPACK
    raise Rejected("encoding", "neither a JSON object nor a zlib stream")


def _inflate(raw: bytes) -> bytes:
    zdict = None
    if len(raw) >= 6 and raw[1] & _FDICT:
        zdict = _DICTIONARIES.get(int.from_bytes(raw[2:6], "big"))
        if zdict is None:
            raise Rejected("encoding", "compressed with an unknown dictionary")
    unpacker = zlib.decompressobj(zdict=zdict) if zdict else zlib.decompressobj()
    try:
        out = unpacker.decompress(raw, MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise Rejected("encoding", f"bad zlib stream ({exc})") from exc
    if unpacker.unconsumed_tail:
        raise Rejected("size", f"more than {MAX_DECODED_BYTES} bytes decompressed")
    if not unpacker.eof:
        raise Rejected("encoding", "truncated zlib stream")
    if unpacker.unused_data:
        raise Rejected("encoding", "bytes after the end of the zlib stream")
    return out


@functools.cache
def _json_decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    """One decoder per contract type, made on first use: ``msgspec.json.decode(raw,
    type=...)`` works out a union type's layout again on every call."""
    return msgspec.json.Decoder(kind)


@functools.cache
def _msgpack_decoder(kind: Any) -> msgspec.msgpack.Decoder[Any]:
    """As :func:`_json_decoder`, for MessagePack."""
    return msgspec.msgpack.Decoder(kind)


def _reason(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    return "schema" if "`$.schema`" in text or "field `schema`" in text else "invalid"


def _decode(kind: Any, raw: bytes, ctype: str | None) -> Any:
    """``raw`` decoded into ``kind``, every bound checked but the NUL one."""
    if len(raw) > MAX_WIRE_BYTES:
        raise Rejected("size", f"{len(raw)} bytes received")
    ctype = ctype or sniff(raw)
    try:
        if ctype == JSON:
            return _json_decoder(kind).decode(raw)
        if ctype == MSGPACK:
            return _msgpack_decoder(kind).decode(_inflate(raw))
    except msgspec.ValidationError as exc:
        raise Rejected(_reason(exc), str(exc)[:200]) from None
    except msgspec.DecodeError as exc:
        raise Rejected("encoding", str(exc)[:200]) from None
    except RecursionError:
        raise Rejected("depth", "nested too deeply") from None
    raise Rejected("encoding", f"unknown content type {ctype[:60]!r}")


_ESCAPED_NUL = b"\\u0000"
_NUL_IN_JSON = re.compile(rb'(?:^|[^\\])(?:\\\\)*\\u0000')
"""A JSON escape of NUL: ``\\u0000`` after an even number of backslashes."""


def canonical(message: Any) -> bytes:
    """The canonical JSON of a decoded message (what the collector stores); raises
    :class:`Rejected` ("invalid") when any string in it, key or value, holds a NUL
    character.

    The JSON encoder escapes NUL as ``\\u0000``, so one search of the bytes it writes finds
    them all (a string holding a backslash followed by ``u0000`` is told apart by the
    backslashes before it)."""
    text = _json_encoder.encode(message)
    if _ESCAPED_NUL in text and _NUL_IN_JSON.search(text):
        where = _nul_path(msgspec.to_builtins(message), "$")
        raise Rejected("invalid", f"a string holds a NUL character - at `{where}`")
    return text


def _nul_path(value: Any, path: str) -> str:
    """Where the first NUL is in ``value`` (built-in types), in msgspec's path notation."""
    if isinstance(value, str):
        return path if "\x00" in value else ""
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                return f"{path}.{_printable(key)}"
            if found := _nul_path(item, f"{path}.{_printable(key)}"):
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if found := _nul_path(item, f"{path}[{i}]"):
                return found
    return ""


def _printable(key: Any) -> str:
    return repr(str(key))[1:-1][:60]


def decode_as(kind: Any, raw: bytes, ctype: str | None = None) -> Any:
    """Decode ``raw`` into ``kind`` (a contract type), validating every bound."""
    message = _decode(kind, raw, ctype)
    canonical(message)
    return message


def decode_canonical(leaf: str, raw: bytes,
                     ctype: str | None = None) -> tuple[Message, bytes]:
    """A device message published on ``leaf`` ('summary', 'alert', ...), decoded (schema-1
    summaries come back as schema 2), with its canonical JSON (:func:`canonical`)."""
    kind = DEVICE_MESSAGES.get(leaf)
    if kind is None:
        raise Rejected("topic", f"unknown leaf {leaf[:50]!r}")
    message = _decode(kind, raw, ctype)
    if isinstance(message, _Unknown):
        raise Rejected("schema", f"schema {_Unknown.__struct_config__.tag!r} on a {leaf!r} topic")
    if isinstance(message, SummaryV1):
        message = compact(message)
    return message, canonical(message)


def decode(leaf: str, raw: bytes, ctype: str | None = None) -> Message:
    """A device message published on ``leaf`` ('summary', 'alert', ...), decoded; schema-1
    summaries come back as schema 2."""
    return decode_canonical(leaf, raw, ctype)[0]


def decode_collector(leaf: str, raw: bytes, ctype: str | None = None) -> Advisory:
    """A message the collector published on ``leaf`` ('advisory'), decoded."""
    kind = COLLECTOR_MESSAGES.get(leaf)
    if kind is None:
        raise Rejected("topic", f"unknown leaf {leaf[:50]!r}")
    message = decode_as(kind, raw, ctype)
    if isinstance(message, _Unknown):
        raise Rejected("schema", f"schema {_Unknown.__struct_config__.tag!r} on a {leaf!r} topic")
    advisory: Advisory = message
    return advisory


def decode_command(raw: bytes) -> Command:
    """A command payload (a flat JSON object, possibly empty) decoded and bounded."""
    if len(raw) > MAX_COMMAND_BYTES:
        raise Rejected("size", f"{len(raw)} bytes, more than {MAX_COMMAND_BYTES}")
    if not raw.strip():
        return Command({})
    args = dict(decode_as(Values, raw, JSON if raw.lstrip()[:1] == b"{" else None))
    schema = args.pop("schema", COMMAND_SCHEMA)
    if schema != COMMAND_SCHEMA:
        raise Rejected("schema", f"unsupported schema (expected {COMMAND_SCHEMA})")
    ident, token = args.pop("id", None), args.pop("token", "")
    if isinstance(ident, (bool, float)) or not isinstance(ident, (str, int, type(None))):
        raise Rejected("invalid", "'id' must be a string or an integer")
    if not isinstance(token, str):
        raise Rejected("invalid", "'token' must be a string")
    return Command(args, ident, token)
