"""The wire contracts: encodings round-trip, every bound is enforced at decode, and a refused
payload names one of the documented reasons."""

from __future__ import annotations

import json
import zlib

import msgspec
import pytest

from edgewatch.contracts import codec
from edgewatch.contracts.alert import Alert, Span
from edgewatch.contracts.status import Status
from edgewatch.contracts.summary import Summary, delta_keys, undelta_keys
from edgewatch.contracts.summary_v1 import SCHEMA_V1, SummaryV1, compact


def _v1(**overrides: object) -> dict[str, object]:
    d: dict[str, object] = {
        "type": "summary", "schema": SCHEMA_V1,
        "window": {"start": 1767225600.0, "end": 1767225660.0, "windows": 1},
        "reference_id": "15eafc2c60728646", "device": "cam-1", "boot_id": "b" * 32, "seq": 7,
        "frames": {"seen": 600, "monitored": 150, "dropped": 0, "sampled_out": 450,
                   "decode_errors": 0, "nonfinite_outputs": 0, "inference_errors": 0},
        "features": {"brightness": {"counts": [3, 14, 0, 5], "missing": 1, "count": 22,
                                    "mean": 119.66305902777778, "std": 1.43,
                                    "m2": 308.7073519838676, "min": 117.0795, "max": 123.46}},
        "labels": {"classes": {"counts": {"person": 597}, "missing": 0}},
        "latency": {"inference_ms": {"count": 3, "p50": 46.0, "p90": 71.5, "p95": 80.6,
                                     "p99": 94.6, "max": 155.4,
                                     "sketch": {"accuracy": 0.01, "count": 3, "zero": 0,
                                                "max": 155.4, "keys": [190, 192, 253],
                                                "counts": [1, 1, 1]}}},
        "resources": {"process_cpu_percent": 130.7, "temperatures_c": {"cpu": 51.0}},
        "quality": {"blurred": 2}, "quality_onsets": {"blurred": 1767225601.0},
        "anomaly": {"frames": 4, "scored": 150, "rate": 0.0267, "threshold": 2.589,
                    "score_mean": 1.33, "score_max": 3.6, "score_sum": 200.3},
        "drift": {"detected": False, "severity": "warning", "score": 2.5,
                  "reasons": ["brightness: warning: shifted 2.5 reference SDs"],
                  "features": {
                      "brightness": {"psi": 0.2, "ks": 0.1, "ks_p": 0.9, "effect": 2.51234,
                                     "p": 0.001, "p_adjusted": 0.002, "status": "warning",
                                     "streak": 0, "drifted": False, "n_eff": 3.0},
                      "classes": {"js": 0.01, "n_eff": 40.0, "effect": 0.01, "p": 1.0,
                                  "p_adjusted": 1.0, "status": "ok", "streak": 0,
                                  "drifted": False}}},
        "outbox": {"pending": 3, "in_memory": 0},
    }
    d.update(overrides)
    return d


def _raw(d: object) -> bytes:
    return json.dumps(d).encode()


def test_schema_1_decodes_into_schema_2_keeping_what_merges() -> None:
    s = codec.decode("summary", _raw(_v1()))
    assert isinstance(s, Summary)
    f = s.features["brightness"]
    assert f.counts == [3, 14, 0, 5] and f.missing == 1 and f.n == 22
    assert f.mean == pytest.approx(119.66305902777778, rel=1e-6)
    assert f.m2 == pytest.approx(308.7073519838676, rel=1e-6)
    assert undelta_keys(s.latency["inference_ms"].keys) == [190, 192, 253]
    assert s.latency["inference_ms"].counts == [1, 1, 1]
    assert s.drift is not None and set(s.drift.flagged) == {"brightness"}
    assert s.drift.effects == {"brightness": 2.51, "classes": 0.01}
    assert s.anomaly.scored == 150 and s.anomaly.frames == 4
    assert s.resources.temperatures_c == {"cpu": 51.0}


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_every_message_round_trips(encoding: str) -> None:
    summary = codec.decode("summary", _raw(_v1()))
    alert = Alert("a1", "drift", "firing", "critical", Span(1.0, 2.0), 1.0, 2.0,
                  device="cam-1", boot_id="b", seq=3)
    status = Status("offline", "cam-1", "b", reason="connection lost")
    for leaf, msg in (("summary", summary), ("alert", alert), ("status", status)):
        raw = codec.encode(msg, encoding)
        assert codec.sniff(raw) == codec.content_type(encoding)
        assert codec.decode(leaf, raw, codec.content_type(encoding)) == msg
        assert codec.decode(leaf, raw) == msg  # no content type (MQTT 3.1.1): sniffed


def test_compressed_stream_names_its_dictionary() -> None:
    raw = codec.encode(codec.decode("summary", _raw(_v1())))
    assert raw[1] & 0x20  # FDICT
    assert int.from_bytes(raw[2:6], "big") == zlib.adler32(codec.WIRE_WORDS)
    plain = zlib.compress(msgspec.msgpack.encode(codec.decode("summary", _raw(_v1()))))
    assert codec.decode("summary", plain).seq == 7  # no dictionary: still decodes
    unknown = raw[:2] + b"\x00\x00\x00\x01" + raw[6:]
    with pytest.raises(codec.Rejected) as e:
        codec.decode("summary", unknown)
    assert e.value.reason == "encoding"


@pytest.mark.parametrize("change,reason", [
    ({"seq": 2**64}, "invalid"),
    ({"seq": -1}, "invalid"),
    ({"frames": {"seen": 10**400}}, "invalid"),
    ({"reference_id": "a\x00b"}, "invalid"),
    ({"device": "x" * 200}, "invalid"),
    ({"schema": "edgewatch.summary/9"}, "schema"),
    ({"unexpected": 1}, "invalid"),
    ({"window": {"start": 1.0, "end": 2.0, "windows": [[[[1]]]]}}, "invalid"),
    ({"features": {"b": {"counts": [1] * 5000}}}, "invalid"),
])
def test_bounds_are_enforced(change: dict[str, object], reason: str) -> None:
    with pytest.raises(codec.Rejected) as e:
        codec.decode("summary", _raw(_v1(**change)))
    assert e.value.reason == reason
    assert e.value.reason in codec.REASONS


@pytest.mark.parametrize("raw,reason", [
    (b'{"schema": "edgewatch.summary/1", "reference_id": "\\ud800"}', "encoding"),
    (b'{"schema": "edgewatch.summary/1", "seq": NaN}', "encoding"),
    (b'{"schema": "edgewatch.summary/1", "drift": {"score": 1e400}}', "invalid"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid"),
    (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "depth"),
    (b'{"schema": "edgewatch.summ', "encoding"),
    (b"\x78\x9c\x01\x02", "encoding"),
    (b"garbage", "encoding"),
    (b" " * (codec.MAX_WIRE_BYTES + 1), "size"),
    (zlib.compress(b"\x00" * (codec.MAX_DECODED_BYTES + 10)), "size"),
])
def test_hostile_bytes_get_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(codec.Rejected) as e:
        codec.decode("summary", raw)
    assert e.value.reason == reason
    assert len(str(e.value)) < 300  # the detail never carries the payload


def test_deep_msgpack_is_refused_not_a_crash() -> None:
    deep = zlib.compress(b"\x91" * 200_000 + b"\x01")
    with pytest.raises(codec.Rejected) as e:
        codec.decode("summary", deep)
    assert e.value.reason in ("depth", "invalid")


def test_unknown_leaf_and_content_type() -> None:
    with pytest.raises(codec.Rejected) as e:
        codec.decode("bogus", b"{}")
    assert e.value.reason == "topic"
    with pytest.raises(codec.Rejected) as e:
        codec.decode("summary", _raw(_v1()), "text/plain")
    assert e.value.reason == "encoding"


def test_commands_are_bounded_and_flat() -> None:
    cmd = codec.decode_command(b'{"schema": "edgewatch.cmd/1", "id": "c1", "token": "t", '
                               b'"alert": "a1", "seconds": 60}')
    assert (cmd.id, cmd.token, cmd.args) == ("c1", "t", {"alert": "a1", "seconds": 60})
    assert codec.decode_command(b"").args == {}
    for bad, reason in [(b'{"id": 18446744073709551616}', "invalid"),
                        (b'{"id": 1.5}', "invalid"),
                        (b'{"a": "\\u0000"}', "invalid"),
                        (b'{"a": {"b": 1}}', "invalid"),
                        (b'{"schema": "edgewatch.cmd/2"}', "schema"),
                        (b'{"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "invalid"),
                        (b"x" * (70 * 1024), "size")]:
        with pytest.raises(codec.Rejected) as e:
            codec.decode_command(bad)
        assert e.value.reason == reason, bad[:40]


def test_delta_keys_invert() -> None:
    keys = [-87, -85, -3, 0, 9, 42]
    assert undelta_keys(delta_keys(keys)) == keys


def test_schema_2_is_much_smaller_than_schema_1() -> None:
    v1 = msgspec.json.decode(_raw(_v1()), type=SummaryV1)
    s = compact(v1)
    assert len(codec.encode(s)) < len(_raw(_v1())) / 2


def test_sketch_keys_and_counts_must_pair_up() -> None:
    d = _v1()
    d["latency"]["inference_ms"]["sketch"]["counts"] = [1, 1]  # type: ignore[index]
    with pytest.raises(codec.Rejected) as e:
        codec.decode("summary", _raw(d))
    assert e.value.reason == "invalid"


def test_extreme_sketch_keys_survive_the_difference_encoding() -> None:
    d = _v1()
    d["latency"]["inference_ms"]["sketch"]["keys"] = [-(2**31), 0, 2**31 - 1]  # type: ignore[index]
    s = codec.decode("summary", _raw(d))
    assert codec.decode("summary", codec.encode(s)) == s
    assert codec.decode("summary", codec.encode(s, "json")) == s


@pytest.mark.parametrize("leaf", ["alert", "status", "cmd_result", "reference"])
def test_every_message_needs_its_schema(leaf: str) -> None:
    with pytest.raises(codec.Rejected) as e:
        codec.decode(leaf, b'{"device": "cam-1"}')
    assert e.value.reason == "schema"


def test_bytes_after_the_compressed_stream_are_refused() -> None:
    raw = codec.encode(codec.decode("summary", _raw(_v1())))
    with pytest.raises(codec.Rejected) as e:
        codec.decode("summary", raw + b"junk")
    assert e.value.reason == "encoding"
