"""Fuzzing the collector's ingest end to end: hostile payloads through a real broker.

A real Mosquitto broker (configured like ``configs/mosquitto/edgewatch.conf``: a queue large
enough for a burst) and the real collector (``edgewatch collector``, a subprocess with its
ingest, its store and its ``/metrics`` endpoint), on SQLite and on PostgreSQL. Hypothesis
generates batches of payloads -- hostile integers, NUL and lone surrogates, deep nesting,
huge and non-finite numbers, wrong types, unknown fields, wrong or missing schemas, truncated
JSON, truncated or garbage zlib, oversize payloads, devices that do not match their topic,
wrong content types, byte flips and dropped fields of valid messages, valid messages on every
leaf, unknown leaves and malformed topics -- published as fast as the collector takes them,
while a canary device keeps publishing valid summaries.

Every payload's fate is predicted by an oracle that runs :func:`edgewatch.contracts.codec.decode`
on the same topic, bytes and content type (what the collector's MQTT thread sees); the
collector's counters (read from /metrics) and its store must match it:

- received == published == stored + duplicates + rejected (all reasons, ``store`` included):
  no message without an outcome; payloads on topics the collector does not subscribe to
  (command topics, unknown leaves, malformed topics outside its filters) never reach it
  and are not counted as published;
- each decode reason (topic, size, encoding, depth, schema, invalid) is counted exactly as
  often as the codec refuses a payload for it (a payload on which the codec raises anything
  but ``Rejected`` -- a codec bug -- must still be refused under some reason); a payload
  naming another device is counted under ``device``; what decodes is stored, a duplicate,
  or quarantined (``store``), and the quarantine holds exactly those;
- no ``reason`` label outside ``codec.REASONS``; /metrics answers 200 at every scrape (after
  every batch, and while waiting for the collector) and ``edgewatch_collector_connected``
  stays 1; the collector process stays up;
- every canary summary is stored exactly once, each within ``STALL_S`` of being published;
- valid messages are stored; nothing the codec refuses is stored; everything stored reads
  back from the store and decodes.

A fixed batch of edge cases (:func:`edge_cases`) runs first, then Hypothesis's batches.
``EDGEWATCH_FUZZ_PAYLOADS`` (default 10000) sets the number of generated payloads per backend.
Run with ``pytest tests/collector/test_ingest_fuzz.py -s`` to see the table of payloads and
outcomes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.parser import text_string_to_metric_families

from edgewatch.collector.mqtt_client import subscriptions
from edgewatch.collector.store import open_store
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts import codec
from edgewatch.contracts.alert import Alert, Expected, Span
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.envelope import Loss
from edgewatch.contracts.reference import (
    Histogram,
    Moments,
    NumericReference,
    Reference,
)
from edgewatch.contracts.status import Manifest, Status
from edgewatch.contracts.summary import OutboxState, Summary, Window
from edgewatch.contracts.topics import parse
from support.broker import MosquittoBroker, free_port
from support.paths import DATA

PAYLOADS = int(os.environ.get("EDGEWATCH_FUZZ_PAYLOADS", "10000"))
BATCH = 100
"""Payloads per Hypothesis example (published back to back, then /metrics is scraped)."""
MAX_BACKLOG = 400
"""Published payloads the collector may not have received yet before the next batch."""
STALL_S = 5.0
"""Longest time a canary summary may take from publish to the store."""
ROOT = "edgewatch/v1"
FLEET = "fuzz"
DEVICES = tuple(f"fz-{i}" for i in range(6))
CANARY = "canary"
LEAVES = ("summary", "alert", "status", "cmd_result", "reference")
KEYED = ("summary", "alert", "cmd_result")
DECODE_REASONS = ("topic", "size", "encoding", "depth", "schema", "invalid")
MAX_WIRE = codec.MAX_WIRE_BYTES
EXAMPLE = DATA / "summary-example.json"
SUMMARY: Summary = codec.decode("summary", EXAMPLE.read_bytes())  # type: ignore[assignment]
SUMMARY_V1 = EXAMPLE.read_bytes()


# --------------------------------------------------------------------------- wire helpers


class Lit:
    """JSON text written as is (``1e400``, ``NaN``, a raw control character...)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class RawStr:
    """A MessagePack str whose bytes are written as is (invalid UTF-8)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Deep:
    """A value nested ``depth`` levels deep: arrays or single-key maps."""

    __slots__ = ("depth", "maps")

    def __init__(self, depth: int, maps: bool) -> None:
        self.depth, self.maps = depth, maps


def to_json(value: Any) -> bytes:
    """JSON as json.dumps writes it (huge ints, ``NaN``, ``\\uXXXX`` escapes of NUL and
    lone surrogates) plus what it cannot write: literals, raw bytes, deep nesting."""
    try:
        return json.dumps(value, separators=(",", ":")).encode()
    except TypeError:  # a Lit, Deep or RawStr
        return _json(value).encode("utf-8", "surrogateescape")


def _json(v: Any) -> str:
    if isinstance(v, Lit):
        return v.text
    if isinstance(v, Deep):
        return ('{"a":' * v.depth + "0" + "}" * v.depth) if v.maps else (
            "[" * v.depth + "]" * v.depth)
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _json(x) for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_json(x) for x in v) + "]"
    if isinstance(v, RawStr):
        return '"' + v.data.decode("utf-8", "surrogateescape") + '"'
    return json.dumps(v)  # None, bools, ints of any size, NaN/Infinity, escaped strings


def to_msgpack(value: Any, zdict: bool = True) -> bytes:
    """Compressed MessagePack as codec.encode writes it, also of what msgspec refuses to
    encode (lone surrogates, deep nesting, raw bytes as str); OverflowError for ints beyond
    64 bits."""
    try:
        raw = msgspec.msgpack.encode(value)
    except (TypeError, UnicodeEncodeError):
        raw = _pack(value)
    packer = (zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                               codec.WIRE_WORDS) if zdict else zlib.compressobj(9))
    return packer.compress(raw) + packer.flush()


def _pack(v: Any) -> bytes:
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, Deep):
        return (b"\x81\xa1a" * v.depth if v.maps else b"\x91" * v.depth) + b"\xc0"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if 0 <= v < 2**64:
            return b"\xcf" + v.to_bytes(8, "big")
        if -(2**63) <= v < 0:
            return b"\xd3" + v.to_bytes(8, "big", signed=True)
        raise OverflowError("int out of MessagePack's range")
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, (str, RawStr)):
        b = v.data if isinstance(v, RawStr) else v.encode("utf-8", "surrogatepass")
        return b"\xdb" + len(b).to_bytes(4, "big") + b
    if isinstance(v, bytes):
        return b"\xc6" + len(v).to_bytes(4, "big") + v
    if isinstance(v, (list, tuple)):
        return b"\xdd" + len(v).to_bytes(4, "big") + b"".join(_pack(x) for x in v)
    if isinstance(v, dict):
        return b"\xdf" + len(v).to_bytes(4, "big") + b"".join(
            _pack(k) + _pack(x) for k, x in v.items())
    raise TypeError(f"cannot pack {type(v).__name__}")


def encode(value: Any, encoding: str) -> tuple[bytes, str]:
    """(bytes, encoding actually used): JSON when asked, or for what MessagePack cannot
    hold (ints beyond 64 bits, JSON literals)."""
    if encoding == "msgpack":
        try:
            return to_msgpack(value), "msgpack"
        except (OverflowError, TypeError):
            pass
    return to_json(value), "json"


# --------------------------------------------------------------------------- valid messages

ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_."
boot_ids = st.text(ID_CHARS, min_size=1, max_size=12)
seqs = st.one_of(st.integers(0, 2**63 - 1), st.integers(0, 1000))
times = st.floats(0.0, 1e11)
safe_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=30)


def summary(device: str, boot: str, seq: int, start: float) -> Summary:
    return msgspec.structs.replace(SUMMARY, device=device, boot_id=boot, seq=seq,
                                   window=Window(start, min(start + 10.0, 1e11)))


def _small_summary() -> bytes:
    """The example summary with fewer features, plus the optional sections, as JSON: the
    base of fuzzed summaries (mutations then reach every kind of field)."""
    keep = ("brightness", "box_area", "det_count")
    drift = SUMMARY.drift
    assert drift is not None
    small = msgspec.structs.replace(
        SUMMARY, features={k: SUMMARY.features[k] for k in keep},
        latency={k: SUMMARY.latency[k] for k in ("inference_ms", "total_ms")},
        drift=msgspec.structs.replace(drift, effects={k: drift.effects.get(k, 0.1)
                                                      for k in keep}),
        quality={"blurred": 2}, quality_onsets={"blurred": 1_767_225_601.0},
        outbox=OutboxState(pending=3, degraded="disk full"), historical=True,
        loss=Loss(compacted=1, evicted={"age": 2}), merged_seqs=[1, 2])
    return msgspec.json.encode(small)


SMALL_SUMMARY = _small_summary()


def make_message(leaf: str, device: str, boot: str, seq: int, t: float, variant: int,
                 text: str = "") -> dict[str, Any]:
    """A valid message for ``leaf`` from ``device`` as plain builtins (schema field
    included); ``variant`` picks among its forms (states, schema 1 or 2...)."""
    msg: Any
    if leaf == "summary":
        if variant % 5 == 0:  # schema 1, as older devices publish it
            v1 = json.loads(SUMMARY_V1)
            v1.update(device=device, boot_id=boot, seq=seq)
            return v1  # type: ignore[no-any-return]
        small = msgspec.json.decode(SMALL_SUMMARY)
        small.update(device=device, boot_id=boot, seq=seq,
                     window={"start": t, "end": min(t + 10.0, 1e11)})
        return small  # type: ignore[no-any-return]
    if leaf == "alert":
        msg = Alert(id=f"a{variant % 7}", rule=("drift", "fps", "temp")[variant % 3],
                    state=("firing", "acknowledged", "snoozed", "resolved")[variant // 3 % 4],
                    severity=("info", "warning", "critical")[variant // 12 % 3],
                    window=Span(t, t), since=t, updated=t, message=text,
                    observed=t / 7.0, expected=Expected(">", 0.5),
                    device=device, boot_id=boot, seq=seq)
    elif leaf == "status":
        online = variant % 2 == 0
        manifest = Manifest(device=device, fleet=FLEET, boot_id=boot, started=t,
                            model_name=text, model_sha256="ab" * 32,
                            adapter="ssd", reference_id="r1", config_sha256="cd" * 32)
        msg = Status(state="online" if online else "offline", device=device, boot_id=boot,
                     time=t, manifest=manifest if online else None)
    elif leaf == "cmd_result":
        msg = CommandResult(command=("ping", "list", "ack")[variant % 3], ok=variant % 2 == 0,
                            id=variant, pong=True, error=text or None,
                            device=device, boot_id=boot, seq=seq)
    else:
        hist = Histogram(counts=[1, 2, 3], edges=[0.25, 0.5])
        msg = Reference(id=boot, model_sha256="ef" * 32, model_name=text or "ssd",
                        adapter="ssd", feature_set_version="3", analysis_width=320,
                        frames=100, source="vtest.avi", created=t,
                        numeric={"brightness": NumericReference(
                            hist, Moments(6, 0.5, 0.1, 0.05, 0.1, 0.9), True, 0.2)},
                        device=device)
    return msgspec.to_builtins(msg)  # type: ignore[no-any-return]


def valid_message(draw: Callable[..., Any], leaf: str, device: str) -> dict[str, Any]:
    """A valid message, every field Hypothesis drew."""
    return make_message(leaf, device, draw(boot_ids), draw(seqs), draw(times),
                        draw(st.integers(0, 2**16)), draw(safe_text))


def _pool(size: int = 64) -> dict[str, list[bytes]]:
    """Valid messages of every leaf (no device yet), as JSON: the bases that mutations
    start from (one draw instead of a dozen; the mutations are what is fuzzed)."""
    rnd = random.Random(20260101)
    return {leaf: [msgspec.json.encode(make_message(
        leaf, "", "".join(rnd.choices(ID_CHARS, k=rnd.randint(1, 12))),
        rnd.choice([rnd.randrange(1000), rnd.randrange(2**63)]), rnd.uniform(0, 1e11), i,
        rnd.choice(["", "ok", "naïve ✓"]))) for i in range(size)] for leaf in LEAVES}


POOL = _pool()


# --------------------------------------------------------------------------- payloads


@dataclass
class Payload:
    category: str
    topic: str
    raw: bytes
    ctype: str | None
    must_store: tuple[str, str, str, int] | None = None
    """(kind, device, boot_id, seq) of a valid keyed message: it must end up in the store."""


def pick(draw: Callable[..., Any], options: Any) -> Any:
    """One of ``options`` (a cheaper draw than a new sampled_from strategy each time)."""
    return options[draw(st.integers(0, len(options) - 1))]


def topic(device: str, leaf: str, fleet: str = FLEET) -> str:
    return f"{ROOT}/{fleet}/{device}/{leaf}"


CONTENT_TYPES = {"json": codec.JSON, "msgpack": codec.MSGPACK}
WRONG_CTYPES = ("text/plain", "application/xml", "application/octet-stream", "image/png",
                "application/vnd.edgewatch.msgpack", "application/msgpack", "")


def ctype_for(draw: Callable[..., Any], encoding: str) -> str | None:
    """The right content type, or none (the collector sniffs), as devices send them."""
    return CONTENT_TYPES[encoding] if draw(st.integers(0, 3)) else None


def _paths(value: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, value) of everything inside ``value`` (dict keys and list indices)."""
    out: list[tuple[tuple[Any, ...], Any]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        prefix, v = stack.pop()
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, x in items:
            path = (*prefix, k)
            out.append((path, x))
            if isinstance(x, (dict, list)):
                stack.append((path, x))
    return out


def pick_path(draw: Callable[..., Any], msg: dict[str, Any],
              want: Callable[[Any], bool] = lambda v: True) -> tuple[Any, ...] | None:
    found = [p for p, v in _paths(msg) if want(v)]
    return found[draw(st.integers(0, len(found) - 1))] if found else None


def set_path(msg: Any, path: tuple[Any, ...], value: Any) -> None:
    for k in path[:-1]:
        msg = msg[k]
    msg[path[-1]] = value


def del_path(msg: Any, path: tuple[Any, ...]) -> None:
    for k in path[:-1]:
        msg = msg[k]
    del msg[path[-1]]


def base(draw: Callable[..., Any]) -> tuple[str, str, dict[str, Any]]:
    """(device, leaf, a valid message of that leaf from that device)."""
    device = pick(draw, DEVICES)
    leaf = pick(draw, LEAVES)
    msg = msgspec.json.decode(pick(draw, POOL[leaf]))
    msg["device"] = device
    if isinstance(msg.get("manifest"), dict):
        msg["manifest"]["device"] = device
    return device, leaf, msg


def finish(draw: Callable[..., Any], category: str, device: str, leaf: str, msg: Any,
           encoding: str | None = None) -> Payload:
    """Encode (JSON or MessagePack, as drawn) and give the right content type or none."""
    encoding = encoding or pick(draw, ["json", "msgpack"])
    raw, used = encode(msg, encoding)
    return Payload(category, topic(device, leaf), raw, ctype_for(draw, used))


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


HOSTILE_INTS = (2**63, 2**64, -1, 10**400, -(10**400), 2**63 - 1, 2**64 - 1, -(2**63),
                2**53, 2**53 + 1, 2**31, -(2**31) - 1, 2**31 - 1, -(2**31), 10**20)


def gen_valid(draw: Callable[..., Any]) -> Payload:
    device, leaf = pick(draw, DEVICES), pick(draw, LEAVES)
    msg = valid_message(draw, leaf, device)
    encoding = pick(draw, ["json", "msgpack"])
    raw = codec.encode(msg, encoding)  # the production encoder
    key = (leaf, device, msg["boot_id"], msg.get("seq", 0)) if leaf in KEYED else None
    return Payload("valid", topic(device, leaf), raw, ctype_for(draw, encoding), key)


hostile_ints = st.one_of(st.sampled_from(HOSTILE_INTS), st.integers())


def gen_hostile_int(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    value = draw(hostile_ints)
    path = ("seq",) if draw(st.booleans()) else (pick_path(draw, msg, is_int) or ("seq",))
    set_path(msg, path, value)
    return finish(draw, "hostile int", device, leaf, msg)


HOSTILE_STRINGS = ("\x00", "a\x00b", "\ud800", "x\udfffy", "\udbff", "\ud83d\ude00",
                   "\ud800\ud800", "\x00\ud800", "\u2028", "\ufeff", "\U0010ffff")


hostile_strings = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(st.one_of(st.sampled_from("\x00\ud800\udc00\udbff\udfff"), st.characters()),
            min_size=1, max_size=12))


def gen_hostile_string(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    text = draw(hostile_strings)
    on_key = draw(st.integers(0, 3)) == 0
    if on_key:  # a map key: a label name, a feature name, a field name
        path = pick_path(draw, msg, lambda v: isinstance(v, dict) and len(v) > 0)
        target = msg
        for k in path if path is not None and draw(st.booleans()) else ():
            target = target[k]
        old = pick(draw, sorted(target))
        target[text] = target.pop(old)
    else:
        path = pick_path(draw, msg, lambda v: isinstance(v, str)) or ("device",)
        set_path(msg, path, text)
    if draw(st.integers(0, 4)) == 0:  # not escaped: raw control characters, invalid UTF-8
        path = pick_path(draw, msg, lambda v: isinstance(v, str)) or ("device",)
        raw = pick(draw, [b"a\x00b", b"\x01", b"\xff", b"\xed\xa0\x80", b"\xc0\x80",
                                    b"\xf4\x90\x80\x80", b"ok\xe2\x82"])
        encoding = pick(draw, ["json", "msgpack"])
        set_path(msg, path, RawStr(raw))
        return finish(draw, "hostile string", device, leaf, msg, encoding)
    return finish(draw, "hostile string", device, leaf, msg)


DEPTHS = (100_000, 50_000, 10_000, 5_000, 3_000)
depths = st.one_of(st.sampled_from(DEPTHS), st.integers(2, 500))
"""Nesting depths. Between about 500 and 3000 levels, whether the decoder reaches Python's
recursion limit (RecursionError: ``depth``) depends on the recursion limit and the caller's
stack: the collector's MQTT thread under the default limit of 1000 versus the oracle inside
Hypothesis, which raises the limit by 2000; those depths would test the environment, not
the collector."""


def gen_deep(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    if draw(st.booleans()):  # where the decoder must skip over it: before a union's tag
        leaf, msg = "summary", valid_message(draw, "summary", device)
        deep = Deep(pick(draw, DEPTHS), maps=draw(st.booleans()))
        value: Any = Deep(deep.depth, True) if draw(st.booleans()) else {
            pick(draw, ["x", "_", "features2"]): deep, **msg}
        return finish(draw, "deep nesting", device, leaf, value)
    deep = Deep(draw(depths), maps=draw(st.booleans()))
    where = pick(draw, ["payload", "field", "new field"])
    if where == "payload":
        value = deep
    elif where == "field":
        path = pick_path(draw, msg) or ("seq",)
        set_path(msg, path, deep)
        value = msg
    else:
        msg[pick(draw, ["x", "features", "labels", "drift", "extra"])] = deep
        value = msg
    return finish(draw, "deep nesting", device, leaf, value)


NUMBERS = ("1e400", "-1e400", "1e309", "NaN", "-NaN", "Infinity", "-Infinity", "nan", "inf",
           "1e-400", "1e300", "-1e300", "1.7976931348623157e308", "0x10", "+1", "01", "1.",
           ".5", "1e", "-")


hostile_floats = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 1e301, 5e-324]), st.floats())


def gen_number(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    path = pick_path(draw, msg, is_number) or ("seq",)
    if draw(st.booleans()):
        set_path(msg, path, Lit(pick(draw, NUMBERS)))
        return finish(draw, "huge/non-finite number", device, leaf, msg, "json")
    set_path(msg, path, draw(hostile_floats))
    return finish(draw, "huge/non-finite number", device, leaf, msg)


WRONG_VALUES = st.one_of(st.none(), st.booleans(), st.text(max_size=5),
                         st.lists(st.integers(-5, 5), max_size=3),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                         st.floats(allow_nan=False), st.integers(), st.binary(max_size=4))


def gen_wrong_type(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    path = pick_path(draw, msg) or ("seq",)
    value = draw(WRONG_VALUES)
    if isinstance(value, bytes):  # MessagePack bin; JSON has none: a list of ints there
        encoding = "msgpack"
    else:
        encoding = pick(draw, ["json", "msgpack"])
    set_path(msg, path, value if encoding == "msgpack" else _jsonable(value))
    return finish(draw, "wrong type", device, leaf, msg, encoding)


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, bytes) else v


field_names = st.one_of(st.sampled_from(["seqq", "Device", "schema2", "type", "extra",
                                         "__proto__", "", "id", "time"]),
                        st.text(min_size=1, max_size=8))


def gen_unknown_field(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    name = draw(field_names)
    target = msg
    path = pick_path(draw, msg, lambda v: isinstance(v, dict))
    if path is not None and draw(st.booleans()):
        for k in path:
            target = target[k]
    target[name] = _jsonable(draw(WRONG_VALUES))
    return finish(draw, "unknown field", device, leaf, msg)


SCHEMAS = ("edgewatch.summary/1", "edgewatch.summary/2", "edgewatch.summary/3",
           "edgewatch.alert/1", "edgewatch.status/1", "edgewatch.cmd_result/1",
           "edgewatch.reference/1", "edgewatch.cmd/1", "", "EDGEWATCH.SUMMARY/2")


def gen_schema(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    how = pick(draw, ["missing", "other", "type"])
    if how == "missing":
        msg.pop("schema", None)
    elif how == "other":
        msg["schema"] = pick(draw, SCHEMAS)
    else:
        msg["schema"] = draw(st.one_of(st.none(), st.integers(), st.lists(st.just(
            "edgewatch.summary/2"), max_size=1), st.booleans()))
    return finish(draw, "wrong/missing schema", device, leaf, msg)


def gen_truncated(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    encoding = pick(draw, ["json", "msgpack"])
    raw = codec.encode(msg, encoding)
    cut = draw(st.integers(0, len(raw) - 1))
    category = "truncated json" if encoding == "json" else "truncated zlib"
    return Payload(category, topic(device, leaf), raw[:cut], ctype_for(draw, encoding))


def gen_garbage_zlib(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    rnd = random.Random(draw(st.integers(0, 2**32)))
    junk = rnd.randbytes(draw(st.integers(0, 300)))
    how = pick(draw, ["stream", "dictionary", "msgpack", "not a map", "bomb",
                                "trailing", "no dictionary", "raw msgpack"])
    if how == "stream":  # a zlib header, then garbage
        raw = b"\x78\x9c" + junk
    elif how == "dictionary":  # a preset dictionary nobody knows
        raw = b"\x78\xbb" + rnd.randbytes(4) + junk
    elif how == "msgpack":  # valid zlib of garbage MessagePack
        raw = _deflate(junk)
    elif how == "not a map":
        raw = to_msgpack(draw(st.one_of(st.integers(0, 100), st.lists(st.integers(0, 9),
                                                                        max_size=3))))
    elif how == "bomb":  # small on the wire, more than MAX_DECODED_BYTES inflated
        raw = _deflate(b"\x00" * (codec.MAX_DECODED_BYTES + draw(st.integers(1, 4096))))
    elif how == "trailing":  # a valid stream followed by garbage
        raw = codec.encode(msg) + junk
    elif how == "no dictionary":  # valid, compressed without the preset dictionary
        raw = to_msgpack(msg, zdict=False)
    else:  # MessagePack without zlib
        raw = msgspec.msgpack.encode(msg)
    ct = pick(draw, [codec.MSGPACK, None])
    return Payload("garbage zlib", topic(device, leaf), raw, ct)


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                              codec.WIRE_WORDS)
    return packer.compress(data) + packer.flush()


random_payloads = st.one_of(st.binary(max_size=64), st.sampled_from(
    [b"", b" ", b"{", b"}", b"[]", b"null", b"0", b'"x"', b"{}", b"\xef\xbb\xbf{}", b"\x00",
     b"\x78", b"\x78\x9c", b"{" * 3 + b"}" * 3]))


def gen_random_bytes(draw: Callable[..., Any]) -> Payload:
    device, leaf = pick(draw, DEVICES), pick(draw, LEAVES)
    raw = draw(random_payloads)
    ct = pick(draw, [None, codec.JSON, codec.MSGPACK])
    return Payload("random bytes", topic(device, leaf), raw, ct)


def gen_oversize(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    size = pick(draw, [MAX_WIRE + 1, MAX_WIRE + 1000, MAX_WIRE + 65536, MAX_WIRE])
    how = pick(draw, ["json padding", "random", "long string"])
    if how == "json padding":  # valid JSON, padded with white space: only the size is wrong
        body = codec.encode(msg, "json")
        raw = b"{" + b" " * max(size - len(body), 0) + body[1:]
        return Payload("oversize", topic(device, leaf), raw, ctype_for(draw, "json"))
    if how == "random":
        raw = b"\x78\x9c" + random.Random(draw(st.integers(0, 2**32))).randbytes(size - 2)
        return Payload("oversize", topic(device, leaf), raw, codec.MSGPACK)
    msg["message" if leaf == "alert" else "reference_id"] = "x" * size
    return finish(draw, "oversize", device, leaf, msg, "json")


short_ids = st.text(ID_CHARS, max_size=10)


def gen_device(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    others = [d for d in DEVICES if d != device]
    if draw(st.integers(0, 3)):
        msg["device"] = pick(draw, [*others, CANARY, device.upper(), device + " ", ""])
    else:
        msg["device"] = draw(short_ids)
    return finish(draw, "device not the topic's", device, leaf, msg)


def gen_content_type(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    encoding = pick(draw, ["json", "msgpack"])
    raw = codec.encode(msg, encoding)
    swapped = codec.MSGPACK if encoding == "json" else codec.JSON
    ct = pick(draw, [*WRONG_CTYPES, swapped, swapped])
    return Payload("wrong content type", topic(device, leaf), raw, ct)


def gen_flip(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    encoding = pick(draw, ["json", "msgpack"])
    raw = bytearray(codec.encode(msg, encoding))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] ^= draw(st.integers(1, 255))
    return Payload(f"flipped bytes ({encoding})", topic(device, leaf), bytes(raw),
                   ctype_for(draw, encoding))


def gen_drop(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    for _ in range(draw(st.integers(1, 3))):
        path = pick_path(draw, msg, lambda v: True)
        if path is None:
            break
        del_path(msg, path)
    return finish(draw, "dropped fields", device, leaf, msg)


def gen_crossed(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    other = pick(draw, [x for x in LEAVES if x != leaf])
    return finish(draw, "other leaf's message", device, other, msg)


UNKNOWN_LEAVES = ("metrics", "Summary", "summaries", "cmd", "status2", "summary/extra",
                  "alert/1/2", "reference_v2", "cmd_results", "config", "x y", "summary ")


leaf_names = st.one_of(st.sampled_from(UNKNOWN_LEAVES),
                       st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))


def gen_bad_topic(draw: Callable[..., Any]) -> Payload:
    device, leaf, msg = base(draw)
    how = pick(draw, ["leaf", "leaf", "no leaf", "empty fleet", "empty device"])
    if how == "leaf":
        name = draw(leaf_names)
        t = topic(device, name)
    elif how == "no leaf":
        t = f"{ROOT}/{FLEET}/{device}"
    elif how == "empty fleet":
        t = f"{ROOT}//{device}/{leaf}"
    else:
        t = f"{ROOT}/{FLEET}//{leaf}"
    p = finish(draw, "unknown leaf / bad topic", device, leaf, msg)
    p.topic = t
    return p


def gen_cmd(draw: Callable[..., Any]) -> Payload:
    device = pick(draw, DEVICES)
    name = pick(draw, ["ping", "ack", "list", "snooze", "x"])
    raw = draw(st.one_of(st.binary(max_size=40), st.just(b'{"id": 1}')))
    return Payload("command topic", topic(device, f"cmd/{name}"), raw, None)


GENERATORS: dict[str, tuple[int, Callable[[Callable[..., Any]], Payload]]] = {
    "hostile int": (16, gen_hostile_int),
    "valid": (20, gen_valid),
    "hostile string": (16, gen_hostile_string),
    "deep nesting": (10, gen_deep),
    "huge/non-finite number": (14, gen_number),
    "wrong type": (16, gen_wrong_type),
    "unknown field": (10, gen_unknown_field),
    "wrong/missing schema": (12, gen_schema),
    "truncated": (12, gen_truncated),
    "garbage zlib": (12, gen_garbage_zlib),
    "random bytes": (6, gen_random_bytes),
    "oversize": (1, gen_oversize),
    "device not the topic's": (10, gen_device),
    "wrong content type": (10, gen_content_type),
    "flipped bytes": (16, gen_flip),
    "dropped fields": (16, gen_drop),
    "other leaf's message": (6, gen_crossed),
    "unknown leaf / bad topic": (8, gen_bad_topic),
    "command topic": (4, gen_cmd),
}
WEIGHTED = [name for i in range(max(w for w, _ in GENERATORS.values()))
            for name, (w, _) in GENERATORS.items() if i < w]
"""Categories as often as their weight, interleaved (Hypothesis favours the first)."""


def payload(draw: Callable[..., Any], offset: int = 0) -> Payload:
    category = WEIGHTED[(draw(st.integers(0, len(WEIGHTED) - 1)) + offset) % len(WEIGHTED)]
    return GENERATORS[category][1](draw)


@st.composite
def batches(draw: Callable[..., Any]) -> list[Payload]:
    """BATCH payloads; the offset spreads Hypothesis's preference for the first category
    over all of them."""
    offset = draw(st.integers(0, len(WEIGHTED) - 1))
    return [payload(draw, offset) for _ in range(BATCH)]


def edge_cases() -> list[Payload]:
    """The payloads the brief names, each spelled out once: Hypothesis runs them first
    (explicit example), so every run covers them whatever it then generates."""
    out: list[Payload] = []

    def add(category: str, leaf: str, value: Any, encoding: str = "json",
            ctype: str | None = None, device: str = "fz-0") -> None:
        raw, _ = encode(value, encoding) if not isinstance(value, bytes) else (value, "")
        out.append(Payload(category, topic(device, leaf), raw, ctype))

    seqs = iter(range(100, 1000))

    def msg(leaf: str, variant: int = 1, **fields: Any) -> dict[str, Any]:
        """A valid message with a seq of its own (seqs are per device, all kinds)."""
        m = make_message(leaf, "fz-0", "edge", next(seqs), 1_767_225_600.0, variant, "edge")
        m.update(fields)
        return m

    for seq in (2**63, 2**64, -1, 10**400, 2**63 - 1):
        add("hostile int", "summary", msg("summary", seq=seq))
    add("hostile int", "summary", msg("summary", frames={"seen": 2**53 + 1}), "msgpack")
    add("hostile int", "alert", msg("alert", seq=10**400))
    v1 = msg("summary", variant=0)  # in bounds; its compact form (deltas) is not
    v1["latency"]["total_ms"]["sketch"]["keys"][0] = -(2**31)
    add("hostile int", "summary", v1)
    add("hostile string", "summary", msg("summary", device="fz-0\ud800"))  # "\ud800" in JSON
    add("hostile string", "alert", msg("alert", boot_id="\udc00"))
    add("hostile string", "status", msg("status", boot_id="a\x00b"), "msgpack")
    add("hostile string", "summary", msg("summary", reference_id=RawStr(b"\xed\xa0\x80")),
        "msgpack")
    for depth in (100_000, 10_000):
        add("deep nesting", "summary", Deep(depth, maps=True))
        add("deep nesting", "summary", Deep(depth, maps=True), "msgpack")
        add("deep nesting", "summary", {"x": Deep(depth, maps=False), **msg("summary")})
        add("deep nesting", "alert", Deep(depth, maps=False), "msgpack")
    for literal in ("1e400", "-1e400", "NaN", "Infinity", "-Infinity"):
        add("huge/non-finite number", "summary",
            msg("summary", window={"start": 1.0, "end": Lit(literal)}))
    add("huge/non-finite number", "alert", msg("alert", observed=math.nan), "msgpack")
    add("wrong type", "summary", msg("summary", seq="7"))
    add("wrong type", "status", msg("status", state=True))
    add("unknown field", "cmd_result", msg("cmd_result", surprise=1))
    add("wrong/missing schema", "summary", msg("summary", schema="edgewatch.summary/3"))
    add("wrong/missing schema", "alert", {k: v for k, v in msg("alert").items()
                                         if k != "schema"})
    body = codec.encode(msg("summary"), "json")
    add("truncated json", "summary", body[: len(body) // 2])
    packed = codec.encode(msg("summary"))
    add("truncated zlib", "summary", packed[: len(packed) // 2])
    add("garbage zlib", "summary", b"\x78\x9c" + bytes(range(256)))
    add("garbage zlib", "summary", _deflate(b"\x00" * (codec.MAX_DECODED_BYTES + 1)))
    add("oversize", "summary", b"{" + b" " * (MAX_WIRE + 1 - len(body)) + body[1:])
    add("oversize", "summary", b"{" + b" " * (MAX_WIRE - len(body)) + body[1:])  # just fits
    add("device not the topic's", "summary", msg("summary", device=CANARY))
    add("device not the topic's", "status", msg("status", device="fz-1"), "msgpack")
    add("wrong content type", "summary", codec.encode(msg("summary")), ctype=codec.JSON)
    add("wrong content type", "summary", body, ctype=codec.MSGPACK)
    add("wrong content type", "alert", codec.encode(msg("alert")), ctype="text/plain")
    for leaf in LEAVES:
        m = msg(leaf, variant=2)
        out.append(Payload("valid", topic("fz-0", leaf), codec.encode(m), codec.MSGPACK,
                           (leaf, "fz-0", "edge", m["seq"]) if leaf in KEYED else None))
    m = msg("summary", variant=0)  # schema 1, as older devices publish it
    out.append(Payload("valid", topic("fz-0", "summary"), to_json(m), None,
                       ("summary", "fz-0", "edge", m["seq"])))
    flipped = bytearray(codec.encode(msg("summary")))
    flipped[len(flipped) // 2] ^= 0xFF
    add("flipped bytes (msgpack)", "summary", bytes(flipped))
    add("dropped fields", "summary", {k: v for k, v in msg("summary").items()
                                      if k != "boot_id"})  # decodes; the store needs one
    v1 = msg("summary", variant=0)  # a sketch with more keys than counts
    v1["latency"]["total_ms"]["sketch"]["counts"].pop()
    add("dropped fields", "summary", v1)
    add("other leaf's message", "status", msg("summary"))
    add("unknown leaf / bad topic", "summaries", msg("summary"))
    add("command topic", "cmd/ping", b'{"id": 1}')
    add("random bytes", "alert", b"")
    return out


# --------------------------------------------------------------------------- the oracle


CODEC_ERROR = "codec error"
CODEC_ERRORS: list[tuple[Payload, str]] = []
"""Payloads on which codec.decode raised something else than Rejected, with the error."""


FILTERS = subscriptions(CollectorMqttConfig(topic_root=ROOT))
"""The collector's topic filters: the device -> collector leaves only."""
UNSUBSCRIBED = "unsubscribed"


def oracle(p: Payload) -> tuple[str, tuple[str, str, int] | None]:
    """What the collector must do with ``p``: a decode reason, ``unsubscribed`` (a topic
    none of its filters matches: it never receives it), ``device`` (names another device),
    ``accept`` (decodes and names its topic's device) or ``accept?`` (decodes, names no
    device); with the store key of what decodes.
    ``codec error``: codec.decode raised something else than Rejected (a codec bug); the
    collector must still refuse the payload, under some reason."""
    if not any(mqtt.topic_matches_sub(f, p.topic) for f in FILTERS):
        return UNSUBSCRIBED, None
    parts = parse(p.topic, ROOT)
    if parts is None:
        return "topic", None
    _fleet, device, leaf = parts
    try:
        msg = codec.decode(leaf, p.raw, p.ctype)
    except codec.Rejected as exc:
        return exc.reason, None
    except Exception as exc:  # a codec bug: reported, see CODEC_ERROR
        CODEC_ERRORS.append((p, f"{type(exc).__name__}: {exc}"))
        return CODEC_ERROR, None
    key = (device, msg.boot_id, msg.seq) if leaf in KEYED else None  # type: ignore[union-attr]
    if msg.device == device:
        return "accept", key
    return ("accept?" if msg.device == "" else "device"), key


# --------------------------------------------------------------------------- the run


@dataclass
class Scrape:
    connected: float
    received: float
    stored: dict[str, float]
    duplicates: float
    bad: dict[str, float]

    @property
    def outcomes(self) -> float:
        return sum(self.stored.values()) + self.duplicates + sum(self.bad.values())


@dataclass
class Run:
    metrics_url: str
    collector: subprocess.Popen[bytes]
    published: int = 0
    """Messages published under ROOT (fuzz and canary), all QoS 1."""
    sent: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    by_category: dict[str, Counter[str]] = field(default_factory=dict)
    must_store: list[tuple[str, str, str, int]] = field(default_factory=list)
    accepted_keys: set[tuple[str, str, int]] = field(default_factory=set)
    """Store keys of the payloads that decode."""
    decodable: set[bytes] = field(default_factory=set)
    """Digests of (topic, payload) of the payloads the store may refuse (quarantine)."""
    scrapes: int = 0
    bad_labels: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    canary_sent: int = 0
    canary_latency: list[float] = field(default_factory=list)
    last: Scrape | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, what: str) -> None:
        with self.lock:
            if len(self.failures) < 20:
                self.failures.append(what)

    def scrape(self) -> Scrape | None:
        """GET /metrics: must answer 200 with parseable text, known reasons, connected 1."""
        self.scrapes += 1
        if self.collector.poll() is not None:
            self.fail(f"the collector exited with code {self.collector.returncode}")
            return None
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=10) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            self.fail(f"/metrics answered {exc.code} (scrape {self.scrapes})")
            return None
        except OSError as exc:
            self.fail(f"/metrics failed: {exc} (scrape {self.scrapes})")
            return None
        if status != 200:
            self.fail(f"/metrics answered {status}")
            return None
        got = Scrape(-1.0, 0.0, {}, 0.0, {})
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "edgewatch_collector_connected":
                    got.connected = s.value
                elif s.name == "edgewatch_collector_received_messages_total":
                    got.received = s.value
                elif s.name == "edgewatch_collector_messages_total":
                    got.stored[s.labels["kind"]] = s.value
                elif s.name == "edgewatch_collector_duplicates_total":
                    got.duplicates = s.value
                elif s.name == "edgewatch_collector_bad_payloads_total":
                    got.bad[s.labels["reason"]] = s.value
        unknown = set(got.bad) - set(codec.REASONS)
        if unknown - self.bad_labels:
            self.fail(f"reason labels outside codec.REASONS in /metrics: {sorted(unknown)}")
            self.bad_labels |= unknown
        if got.connected != 1.0:
            self.fail(f"edgewatch_collector_connected is {got.connected} "
                      f"(scrape {self.scrapes})")
        self.last = got
        return got


def _digest(topic: str, raw: bytes) -> bytes:
    return hashlib.sha256(topic.encode() + b"\x00" + raw).digest()


def properties(ctype: str | None) -> Properties | None:
    if ctype is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = ctype
    return props


def mqtt_client(port: int, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(500)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def canary_summary(boot: str, seq: int) -> Summary:
    return summary(CANARY, boot, seq, 1_767_225_600.0 + 10.0 * seq)


def canary_loop(run: Run, port: int, store_url: str, boot: str, stop: threading.Event) -> None:
    """Publish canary summaries one after the other, each once the previous one is stored,
    timing each from publish to store."""
    client = mqtt_client(port, "fuzz-canary")
    store = open_store(store_url)
    try:
        while not stop.is_set():
            seq = run.canary_sent
            encoding = "json" if seq % 5 == 4 else "msgpack"
            raw = codec.encode(canary_summary(boot, seq), encoding)
            started = time.monotonic()
            info = client.publish(topic(CANARY, "summary"), raw, qos=1,
                                  properties=properties(CONTENT_TYPES[encoding]))
            with run.lock:
                run.published += 1
                run.canary_sent += 1
            info.wait_for_publish(10)
            while True:
                state = store.device(CANARY)
                if state is not None and state.summaries > seq:
                    run.canary_latency.append(time.monotonic() - started)
                    break
                if time.monotonic() - started > STALL_S:
                    run.fail(f"canary summary seq {seq} not stored {STALL_S:.0f} s after "
                             "being published: the collector stalled")
                    run.canary_latency.append(math.inf)
                    stop.wait(2.0)
                    break
                time.sleep(0.02)
            stop.wait(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
        store.close()


def settle(run: Run, timeout: float = 30.0, quiet_s: float = 3.0) -> bool:
    """Wait until everything published is received and every message has an outcome; False
    when the counters stop moving short of that (for ``quiet_s``) or after ``timeout``."""
    deadline = time.monotonic() + timeout
    seen, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        s = run.scrape()
        if s is None:
            return False
        if s.received >= run.published and s.outcomes >= s.received:
            return True
        if s.outcomes + s.received != seen:
            seen, since = s.outcomes + s.received, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return False
        time.sleep(0.2)
    return False


def wait_for(predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def fuzz_broker(broker_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    # As configs/mosquitto/edgewatch.conf: a collector acknowledges after its commit, so
    # the broker must be able to queue a burst for it.
    broker = broker_factory(extra_config=["max_queued_messages 100000",
                                          "max_queued_bytes 0"])
    broker.start()
    return broker


@pytest.fixture
def collector(fuzz_broker: MosquittoBroker, store_url: str,
              tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``edgewatch collector`` as it runs in production, with /metrics on a free port."""
    http = free_port()
    config = tmp_path / "collector.toml"
    config.write_text(f'[mqtt]\nport = {fuzz_broker.port}\nclient_id = "fuzz-collector"\n'
                      f'[store]\nurl = "{store_url}"\n[http]\nport = {http}\n')
    log = tmp_path / "collector.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edgewatch.cli", "collector",
                                 "--config", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        yield proc, f"http://127.0.0.1:{http}/metrics", log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- the test


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_fuzzed_payloads_never_hurt_the_collector(
        collector: tuple[subprocess.Popen[bytes], str, Path], fuzz_broker: MosquittoBroker,
        store_url: str) -> None:
    proc, metrics_url, log = collector
    CODEC_ERRORS.clear()
    run = Run(metrics_url, proc)
    started = time.monotonic()
    assert wait_for(lambda: (s := run.scrape()) is not None and s.connected == 1.0, 20, 0.2), (
        f"the collector did not come up: {run.failures}\n{log.read_text()[-3000:]}")
    run.failures.clear()  # the refused connections while it started
    run.bad_labels.clear()  # found again by the next scrape

    boot = f"canary-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    canary = threading.Thread(target=canary_loop, daemon=True,
                              args=(run, fuzz_broker.port, store_url, boot, stop))
    publisher = mqtt_client(fuzz_broker.port, "fuzz-publisher")
    examples = max(1, math.ceil(PAYLOADS / BATCH))

    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], verbosity=Verbosity.quiet,
              suppress_health_check=list(HealthCheck))
    @given(batches())
    @example(edge_cases())
    def fuzz(batch: list[Payload]) -> None:
        if run.failures:  # already failed: do not bury the first failure under more
            return
        infos = []
        for p in batch:
            outcome, key = oracle(p)
            category = p.category
            run.sent[category] += 1
            run.expected[outcome] += 1
            run.by_category.setdefault(category, Counter())[outcome] += 1
            if p.must_store is not None:
                run.must_store.append(p.must_store)
            if key is not None and outcome in ("accept", "accept?"):
                run.accepted_keys.add(key)
            if outcome in ("accept", "accept?", CODEC_ERROR):
                run.decodable.add(_digest(p.topic, p.raw))
            infos.append(publisher.publish(p.topic, p.raw, qos=1,
                                           properties=properties(p.ctype)))
            if outcome != UNSUBSCRIBED:
                with run.lock:
                    run.published += 1
        for info in infos:
            info.wait_for_publish(30)
            if info.rc != mqtt.MQTT_ERR_SUCCESS or not info.is_published():
                run.fail(f"the broker did not take a payload (rc {info.rc})")
        # scrape after every batch; wait while the collector is too far behind
        if not wait_for(lambda: (s := run.scrape()) is None
                        or s.received >= run.published - MAX_BACKLOG, 2 * STALL_S):
            run.fail(f"the collector stalled: {run.last.received if run.last else '?'} "
                     f"received of {run.published} published")

    try:
        canary.start()
        # the subscription is up once the first canary summary is stored
        assert wait_for(lambda: len(run.canary_latency) > 0, 20), (
            f"the first canary summary never reached the store: {run.failures}")
        fuzz()
        fuzz_s = time.monotonic() - started
        stop.set()
        canary.join(STALL_S + 10)
        settled = settle(run)
    finally:
        stop.set()
        if canary.is_alive():
            canary.join(STALL_S + 10)
        publisher.disconnect()
        publisher.loop_stop()
    final = run.last
    elapsed = time.monotonic() - started

    with open_store(store_url) as store:
        facts = StoreFacts.read(store)
    report(run, final, fuzz_s, elapsed)
    problems = verify(run, final, settled, facts, boot)
    connects = fuzz_broker.log_text().count(" as fuzz-collector ")
    if connects != 1:  # connected at every scrape is not enough: it may have reconnected
        problems.append(f"the collector connected to the broker {connects} times")
    assert not problems, "\n".join(problems)


@dataclass
class StoreFacts:
    """What the store holds at the end of a run."""

    keys: dict[str, set[tuple[str, str, int]]]
    """Stored (device, boot_id, seq) by kind."""
    unreadable: list[str]
    """Stored messages the store does not give back, or gives back in a form that does not
    decode."""
    quarantined: list[Any]

    @classmethod
    def read(cls, store: Any) -> StoreFacts:
        keys = {kind: set(store.keys(kind)) for kind in KEYED}
        unreadable: list[str] = []
        for device in (*DEVICES, CANARY):
            for kind, rows in (("summary", store.summaries(device, 1_000_000)),
                               ("alert", store.alerts(device, 1_000_000))):
                have = sum(1 for k in keys[kind] if k[0] == device)
                if len(rows) != have:
                    unreadable.append(f"{device}: {have} {kind} messages stored, "
                                      f"{len(rows)} read back")
                for row in rows:
                    raw = (codec.encode(row, "json") if isinstance(row, msgspec.Struct)
                           else json.dumps(row).encode())
                    try:
                        codec.decode(kind, raw, codec.JSON)
                    except codec.Rejected as exc:
                        unreadable.append(f"a stored {kind} of {device} does not decode: {exc}")
        return cls(keys, unreadable, store.quarantined(1_000_000))


def verify(run: Run, final: Scrape | None, settled: bool, facts: StoreFacts,
           boot: str) -> list[str]:
    """Every way the run went wrong (empty: none)."""
    problems = list(run.failures)
    if final is None:
        return [*problems, "no scrape of /metrics succeeded at the end"]

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    sent = sum(run.sent.values())
    check(sent >= PAYLOADS, f"only {sent} payloads generated")
    if PAYLOADS >= 10_000:
        generated = {c.split(" (")[0].replace("truncated json", "truncated")
                     .replace("truncated zlib", "truncated") for c in run.sent}
        check(generated >= set(GENERATORS),
              f"categories never generated: {set(GENERATORS) - generated}")
    # every message has exactly one outcome
    check(final.received == run.published,
          f"received {final.received:.0f} of {run.published} published")
    lost = final.received - final.outcomes
    check(settled and lost == 0,
          f"received {final.received:.0f} != stored {sum(final.stored.values()):.0f} + "
          f"duplicates {final.duplicates:.0f} + rejected {sum(final.bad.values()):.0f}: "
          f"{lost:.0f} messages without an outcome "
          f"({run.expected[CODEC_ERROR]} payloads made codec.decode raise another exception "
          "than Rejected)")
    # rejected for the codec's reason (a payload on which the codec itself failed: any
    # reason); what decodes is stored, a duplicate, refused as another device's, or
    # quarantined
    extra = 0.0
    for reason in DECODE_REASONS:
        got = final.bad.get(reason, 0)
        check(got >= run.expected[reason], f"bad_payloads_total{{reason={reason!r}}} is "
              f"{got:.0f}, the codec refuses {run.expected[reason]}")
        extra += got - run.expected[reason]
    check(extra <= run.expected[CODEC_ERROR], f"{extra:.0f} more refusals than the codec's")
    device = final.bad.get("device", 0)
    check(run.expected["device"] <= device <= run.expected["device"] + run.expected["accept?"],
          f"bad_payloads_total{{reason='device'}} is {device:.0f}, expected "
          f"{run.expected['device']}..{run.expected['device'] + run.expected['accept?']}")
    decoded = (run.expected["accept"] + run.expected["accept?"] + run.expected["device"]
               + run.expected[CODEC_ERROR] - extra + run.canary_sent)
    kept = sum(final.stored.values()) + final.duplicates + device + final.bad.get("store", 0)
    check(kept == decoded, f"stored + duplicates + device + store = {kept:.0f}, but "
          f"{decoded:.0f} messages decode")
    # the canary: every summary stored exactly once, none late
    canary = sorted(k for k in facts.keys["summary"] if k[0] == CANARY)
    check(canary == [(CANARY, boot, s) for s in range(run.canary_sent)],
          f"{run.canary_sent} canary summaries sent, {len(canary)} stored")
    check(run.canary_sent >= (10 if PAYLOADS >= 10_000 else 2),
          f"only {run.canary_sent} canary summaries")
    check(max(run.canary_latency, default=math.inf) <= STALL_S, "a canary summary was late")
    # valid messages are stored; nothing the codec refuses is; what is stored reads back
    stored = {k for kind in KEYED for k in facts.keys[kind] if k[0] != CANARY}
    missing = [k for k in run.must_store if k[1:] not in stored]  # as any kind: a key is
    # a device's seq, so another message with the same key may have been stored first
    check(not missing, f"{len(missing)} valid messages not stored, e.g. {missing[:3]}")
    check(stored <= run.accepted_keys,
          f"stored but refused by the codec: {sorted(stored - run.accepted_keys)[:5]}")
    check(not facts.unreadable, "stored but unreadable: " + "; ".join(facts.unreadable[:5]))
    # the quarantine holds what was counted under "store", and only messages that decode
    check(len(facts.quarantined) == final.bad.get("store", 0),
          f"{len(facts.quarantined)} quarantined, {final.bad.get('store', 0):.0f} counted")
    strays = [q for q in facts.quarantined
              if q.reason != "store" or _digest(q.topic, q.payload) not in run.decodable]
    check(not strays, "quarantined but not decodable: "
          + repr([(q.topic, q.reason, q.detail, q.payload[:80]) for q in strays[:3]]))
    return problems


def report(run: Run, final: Scrape | None, fuzz_s: float, elapsed: float) -> None:
    """The table quoted in reports (pytest -s)."""
    reasons = ["accept", "accept?", "device", *DECODE_REASONS, UNSUBSCRIBED, CODEC_ERROR]
    width = {r: max(9, len(r) + 2) for r in reasons}
    head = f"{'category':<26}{'sent':>7} " + "".join(f"{r:>{width[r]}}" for r in reasons)
    lines = ["", "payloads sent per category, by the codec's verdict "
             "(accept? = decodes, names no device)", head, "-" * len(head)]
    for category in sorted(run.by_category, key=lambda c: -run.sent[c]):
        row = run.by_category[category]
        lines.append(f"{category:<26}{run.sent[category]:>7} "
                     + "".join(f"{row.get(r, 0) or '':>{width[r]}}" for r in reasons))
    total = sum(run.sent.values())
    lines.append(f"{'total':<26}{total:>7} "
                 + "".join(f"{run.expected.get(r, 0) or '':>{width[r]}}" for r in reasons))
    if final is not None:
        lines += ["", "collector's counters (/metrics) vs the oracle",
                  f"  received            {final.received:>8.0f}   published {run.published}"
                  f" ({total - run.expected[UNSUBSCRIBED]} fuzz + {run.canary_sent} canary)",
                  f"  stored              {sum(final.stored.values()):>8.0f}   by kind "
                  + ", ".join(f"{k} {v:.0f}" for k, v in sorted(final.stored.items()) if v),
                  f"  duplicates          {final.duplicates:>8.0f}",
                  f"  not subscribed      {run.expected[UNSUBSCRIBED]:>8}   (never received)"]
        for reason in sorted(set(final.bad) | set(codec.REASONS)):
            want = run.expected.get(reason, 0) if reason in DECODE_REASONS else (
                f"{run.expected['device']}..{run.expected['device'] + run.expected['accept?']}"
                if reason == "device" else "-")
            lines.append(f"  bad {reason:<15} {final.bad.get(reason, 0):>8.0f}   oracle {want}")
    lat = sorted(run.canary_latency)
    if lat:
        lines.append(f"canary: {run.canary_sent} summaries, publish->store median "
                     f"{lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
    lines.append(f"{run.scrapes} scrapes of /metrics; fuzzing {fuzz_s:.1f} s "
                 f"({total / max(fuzz_s, 1e-9):.0f} payloads/s), whole run {elapsed:.1f} s")
    for p, error in CODEC_ERRORS[:3]:
        lines.append(f"codec.decode raised {error[:120]} on {p.category} {p.topic} "
                     f"({p.ctype}): {p.raw[:160]!r}")
    if run.failures:
        lines += ["failures:", *("  " + f for f in run.failures)]
    print("\n".join(lines))
