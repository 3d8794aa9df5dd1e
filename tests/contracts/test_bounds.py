"""The bounded field types (edgewatch.contracts.bounds): each limit is where the type
changes, checked by decoding values just inside and just outside it through the codec (which
checks the one bound the types leave to it: no NUL in any string)."""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

import msgspec
import pytest

from edgewatch.contracts import bounds, codec
from edgewatch.contracts.summary import Summary


def accepts(kind: Any, value: Any) -> bool:
    try:
        codec.decode_as(kind, json.dumps(value).encode(), codec.JSON)
    except codec.Rejected as exc:
        assert exc.reason == "invalid", exc
        return False
    return True


@pytest.mark.parametrize(("kind", "inside", "outside"), [
    (bounds.Seq, [0, bounds.MAX_SEQ], [-1, bounds.MAX_SEQ + 1]),
    (bounds.Count, [0, bounds.MAX_COUNT], [-1, bounds.MAX_COUNT + 1]),
    (bounds.SmallInt, [-(2**31), 2**31 - 1], [-(2**31) - 1, 2**31]),
    (bounds.Real, [-bounds.MAX_ABS_FLOAT, 0.0, bounds.MAX_ABS_FLOAT], [-1e301, 1e301]),
    (bounds.Time, [0.0, 1e11], [-0.001, 1e11 + 1]),
    (bounds.Unit, [0.0, 0.5, 1.0], [-0.001, 1.001]),
    (bounds.Name, ["a", "x" * 128, "é ü"], ["", "x" * 129, "a\x00b"]),
    (bounds.Id, ["", "x" * 128], ["x" * 129, "\x00"]),
    (bounds.Text, ["", "t" * 4096], ["t" * 4097, "line\x00"]),
    (bounds.Digest, ["", "ab" * 32, "0123456789abcdef"], ["AB", "g", "a" * 65, "ab\n"]),
], ids=["Seq", "Count", "SmallInt", "Real", "Time", "Unit", "Name", "Id", "Text", "Digest"])
def test_values_inside_the_bound_decode_and_values_outside_do_not(
        kind: Any, inside: list[Any], outside: list[Any]) -> None:
    assert [v for v in inside if not accepts(kind, v)] == []
    assert [v for v in outside if accepts(kind, v)] == []


def test_real_refuses_what_json_readers_cannot_take() -> None:
    # MessagePack carries NaN and infinities (JSON cannot); Real refuses them.
    for value in (math.nan, math.inf, -math.inf, 1e301):
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(msgspec.msgpack.encode(value), type=bounds.Real)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(-2.5), type=bounds.Real) == -2.5


def test_the_largest_seq_fits_a_signed_64_bit_column_and_the_next_does_not() -> None:
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE TABLE t (seq INTEGER)")
        conn.execute("INSERT INTO t VALUES (?)", (bounds.MAX_SEQ,))
        assert conn.execute("SELECT seq FROM t").fetchone()[0] == bounds.MAX_SEQ
        with pytest.raises(OverflowError):
            conn.execute("INSERT INTO t VALUES (?)", (bounds.MAX_SEQ + 1,))


def test_the_largest_count_is_exact_as_a_double() -> None:
    assert float(bounds.MAX_COUNT) == bounds.MAX_COUNT
    assert float(bounds.MAX_COUNT + 1) != bounds.MAX_COUNT + 1  # where doubles stop counting
    assert math.isfinite(bounds.MAX_ABS_FLOAT * 1e8)  # headroom for sums and unit changes


def test_collection_limits_are_ordered_and_positive() -> None:
    limits = [bounds.MAX_FEATURES, bounds.MAX_BINS, bounds.MAX_LABELS,
              bounds.MAX_SKETCH_BUCKETS, bounds.MAX_REASONS, bounds.MAX_MERGED,
              bounds.MAX_ITEMS]
    assert all(isinstance(n, int) and n > 0 for n in limits)
    assert bounds.MAX_MERGED > bounds.MAX_LABELS >= bounds.MAX_BINS > bounds.MAX_FEATURES


def summary(**fields: Any) -> dict[str, Any]:
    return {"schema": "edgewatch.summary/2", "window": {"start": 1.0, "end": 2.0},
            "reference_id": "r1", "frames": {}, "device": "cam-1", **fields}


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
@pytest.mark.parametrize(("fields", "where"), [
    ({"boot_id": "b\x00"}, "$.boot_id"),                                  # a value
    ({"drift": {"reasons": ["ok", "x" * 100 + "\x00"]}}, "$.drift.reasons[1]"),  # a text
    ({"quality": {"bl\x00ck": 1}}, "$.quality.bl\\x00ck"),                # a key
    ({"drift": {"not_voting": {"a": "\\\x00"}}}, "$.drift.not_voting.a"),  # after \\
], ids=["value", "text", "key", "after-backslash"])
def test_a_nul_anywhere_in_a_message_is_refused(fields: dict[str, Any], where: str,
                                                encoding: str) -> None:
    raw = codec.encode(summary(**fields), encoding)  # encode() writes dicts as they are
    assert codec.decode("summary", codec.encode(summary(), encoding))  # the rest is valid
    with pytest.raises(codec.Rejected) as info:
        codec.decode("summary", raw, codec.content_type(encoding))
    assert info.value.reason == "invalid" and "NUL" in info.value.detail
    assert info.value.detail.endswith(f"at `{where}`")


def test_a_backslash_followed_by_u0000_is_text_not_a_nul() -> None:
    text = "C:\\u0000 and \\\\u0000"  # backslash(es) then the letters u0000
    message = codec.decode("summary", json.dumps(summary(boot_id=text)).encode())
    assert isinstance(message, Summary) and message.boot_id == text
    assert json.loads(codec.canonical(message))["boot_id"] == text
