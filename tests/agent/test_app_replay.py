"""End to end on real footage: profile build, replay, and exact merging of windows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import msgspec
import pytest

from edgewatch.agent.app import build_agent
from edgewatch.agent.delivery.assembly import summary_merger
from edgewatch.agent.delivery.outbox import Outbox
from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.measure.image import IMAGE_FEATURES
from edgewatch.agent.measure.outputs import DETECTOR_FEATURES
from edgewatch.agent.source import open_source
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.cli import main
from edgewatch.clock import ManualClock
from edgewatch.config.agent import parse_config
from edgewatch.contracts import Summary, SummaryV1, codec, compact
from edgewatch.contracts.vocabulary import SEVERITY_RANK
from support.paths import DATA, ssd_config_dict


@pytest.fixture(scope="module")
def replayed(assets: Path, vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("replay")
    cfg = work / "agent.toml"
    cfg.write_text(
        f'[model]\npath = "{assets}/models/ssdlite_mobilenet_v2_coco.onnx"\n'
        f'labels = "{assets}/models/coco_labels.txt"\n[window]\nseconds = 10.0\n'
    )
    ref, out = work / "ref.json", work / "out.jsonl"
    assert main(["profile", "build", "--config", str(cfg), "--source", str(vtest),
                 "--frames", "0:400", "--out", str(ref)]) == 0
    assert main(["replay", "--config", str(cfg), "--source", str(vtest), "--reference", str(ref),
                 "--out", str(out), "--start", "2026-01-01T00:00:00Z"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return {"config": cfg, "reference": ReferenceProfile.load(ref), "lines": lines}


def test_reference_profile_contents(replayed: dict) -> None:
    ref: ReferenceProfile = replayed["reference"]
    assert ref.frames == 400 and ref.adapter == "ssd" and len(ref.model_sha256) == 64
    assert set(IMAGE_FEATURES) | set(DETECTOR_FEATURES) == set(ref.numeric)
    assert {"classes", "position"} == set(ref.categorical)
    assert ref.categorical["classes"].get("person") > 1000
    assert ref.numeric["brightness"].lag1_autocorr > 0.9
    assert ref.frame_interval == pytest.approx(0.1)  # vtest's 10 fps
    older = dataclasses.replace(ref, frame_interval=0.0)  # as written before the field
    assert "frame_interval" not in older.to_dict()
    assert ReferenceProfile.from_dict(older.to_dict()).id == older.id


def test_replay_lines_carry_every_feature(replayed: dict) -> None:
    lines = replayed["lines"]
    example = json.loads((DATA / "summary-example.json").read_text())
    assert set(lines[0]) == set(example)  # the documented example is the real shape
    assert set(lines[0]["drift"]) == set(example["drift"])
    assert [line["type"] for line in lines] == ["summary"] * 8
    assert sum(line["frames"]["seen"] for line in lines) == 795
    assert lines[0]["window"] == {"start": 1767225600.0, "end": 1767225610.0, "windows": 1}
    for line in lines:
        frames = line["frames"]  # 10 fps footage, features.max_fps 2.5: one frame in 4
        assert frames["monitored"] + frames["sampled_out"] == frames["seen"]
        assert frames["monitored"] == -(-frames["seen"] // 4)
        assert line["frames"]["dropped"] == 0
        assert set(line["features"]) == set(IMAGE_FEATURES) | set(DETECTOR_FEATURES)
        assert line["labels"]["classes"]["counts"]["person"] > 50
        assert line["latency"]["inference_ms"]["count"] == line["frames"]["monitored"]
        assert line["latency"]["inference_ms"]["p50"] > 0
        assert line["reference_id"] == replayed["reference"].id
        assert line["resources"] == {}  # a replay describes footage, not the machine


def test_merged_windows_equal_the_whole_run(replayed: dict, assets: Path, vtest: Path) -> None:
    reference: ReferenceProfile = replayed["reference"]
    windows = [WindowSummary.from_dict(line, reference) for line in replayed["lines"]]
    merged = windows[0]
    for w in windows[1:]:
        merged.merge(w)
    # The same footage through one single window.
    cfg = parse_config(ssd_config_dict(assets, window={"seconds": 1e7}))
    sink = ListSink()
    agent = build_agent(cfg, reference, engine=InferenceEngine(cfg.model), sink=sink,
                        publish=False, live=False, lossless=True)
    agent.run(open_source(str(vtest), start_time=1767225600.0))
    [whole] = sink.summaries
    assert merged.frames == whole.frames
    assert set(merged.numeric) == set(whole.numeric)
    for name, feat in whole.numeric.items():
        assert merged.numeric[name].hist == feat.hist, name
        assert merged.numeric[name].moments.count == feat.moments.count
        assert merged.numeric[name].moments.mean == pytest.approx(feat.moments.mean, rel=1e-9)
    for name, counts in whole.categorical.items():
        assert merged.categorical[name] == counts
    assert merged.latency["inference_ms"].count == whole.latency["inference_ms"].count
    assert merged.windows == 8


def test_show_prints_a_table(replayed: dict, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.jsonl"
    alert = {"type": "alert", "schema": "edgewatch.alert/1", "id": "a1", "rule": "drift",
             "state": "firing", "severity": "critical", "window": {"start": 1.0, "end": 2.0},
             "since": 1.0, "updated": 2.0, "message": "drift: something moved"}
    out.write_text("\n".join(json.dumps(line) for line in [*replayed["lines"], alert]))
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2026-01-01 00:00:00" in text
    assert text.splitlines()[-2:] == ["alerts (1):",
                                      "1970-01-01 00:00:01 critical firing: drift: something moved"]
    # lines are read through the contracts: an out-of-bounds line is one clear error
    bad = dict(replayed["lines"][0], frames={**replayed["lines"][0]["frames"], "seen": -1})
    out.write_text(json.dumps(bad) + "\n")
    assert main(["show", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out}:1: not a summary or alert line" in err and "seen" in err


# -- the wire form (edgewatch.summary/2) ------------------------------------------------


def replay_windows(replayed: dict) -> list[WindowSummary]:
    return [WindowSummary.from_dict(line, replayed["reference"]) for line in replayed["lines"]]


def test_wire_form_round_trips_and_is_the_compacted_replay_line(replayed: dict) -> None:
    reference: ReferenceProfile = replayed["reference"]
    for line, window in zip(replayed["lines"], replay_windows(replayed)):
        wire = window.to_wire()
        assert wire == compact(msgspec.convert(line, SummaryV1))  # replay line -> schema 2
        for encoding in ("msgpack", "json"):
            assert codec.decode("summary", codec.encode(wire, encoding)) == wire
        back = WindowSummary.from_wire(wire, reference)
        assert back.to_wire() == wire
        assert (back.start, back.end, back.windows) == (window.start, window.end, 1)
        assert back.frames == window.frames and back.quality == window.quality
        for name, feature in window.numeric.items():
            assert back.numeric[name].hist == feature.hist, name
            assert back.numeric[name].moments.count == feature.moments.count
            assert back.numeric[name].moments.mean == pytest.approx(feature.moments.mean,
                                                                     rel=1e-6, abs=1e-30)
        assert back.categorical == window.categorical
        for stage, sketch in window.latency.items():
            assert back.latency[stage].buckets == sketch.buckets, stage
            assert back.latency[stage].count == sketch.count
        assert (back.anomaly.scored, back.anomaly.anomalous) == (window.anomaly.scored,
                                                                 window.anomaly.anomalous)
        assert back.extra["drift"]["severity"] == line["drift"]["severity"]


def test_wire_summaries_merge_like_replay_lines(replayed: dict) -> None:
    reference: ReferenceProfile = replayed["reference"]
    by_v1 = replay_windows(replayed)
    merged_v1 = by_v1[0]
    for w in by_v1[1:]:
        merged_v1.merge(w)
    payloads = [msgspec.to_builtins(w.to_wire()) for w in replay_windows(replayed)]
    merge = summary_merger(reference)
    out = payloads[0]
    for p in payloads[1:]:
        out = merge(out, p)
    merged = msgspec.convert(out, Summary)
    expected = merged_v1.to_wire()
    # rows queued as schema 1 by an older agent merge the same way, into schema 2
    assert merge(replayed["lines"][0], payloads[1]) == merge(payloads[0], payloads[1])
    assert merged.window == expected.window and merged.window.windows == 8
    assert merged.frames == expected.frames and merged.frames.seen == 795
    assert merged.labels == expected.labels and merged.latency == expected.latency
    assert merged.quality == expected.quality
    assert set(merged.features) == set(expected.features)
    for name, feature in expected.features.items():
        got = merged.features[name]
        assert (got.counts, got.missing, got.n) == (feature.counts, feature.missing,
                                                     feature.n), name
        for stat in ("mean", "m2", "min", "max"):
            assert getattr(got, stat) == pytest.approx(getattr(feature, stat), rel=1e-5,
                                                       abs=1e-12), (name, stat)
    assert (merged.anomaly.frames, merged.anomaly.scored) == (expected.anomaly.frames,
                                                              expected.anomaly.scored)
    worst = max((line["drift"] for line in replayed["lines"]),
                key=lambda d: SEVERITY_RANK[d["severity"]])
    assert merged.drift is not None and merged.drift.severity == worst["severity"]
    assert merged.drift.score == pytest.approx(worst["score"], rel=1e-6)


def test_outbox_compaction_keeps_every_count_of_wire_summaries(replayed: dict,
                                                                tmp_path: Path) -> None:
    reference: ReferenceProfile = replayed["reference"]
    def open_outbox(max_bytes: int) -> Outbox:
        return Outbox(tmp_path / "o.db", device="cam-1", boot_id="b", clock=ManualClock(),
                      max_bytes=max_bytes, max_age_s=0.0, merge=summary_merger(reference),
                      auto_caps=False)

    outbox = open_outbox(1 << 20)  # filled under a larger cap, then reopened under 160 KiB
    seen = 0
    for repeat in range(6):  # 48 windows: more than the cap holds
        for w in replay_windows(replayed):
            w.start, w.end = w.start + 100 * repeat, w.end + 100 * repeat
            seen += w.frames.seen
            outbox.put("summary", msgspec.to_builtins(w.to_wire()), window_start=w.start,
                       window_end=w.end)
    outbox.close()
    outbox = open_outbox(160 * 1024)
    report = outbox.enforce_caps()
    assert report.compacted > 0 and report.evicted == {}
    rows = outbox.pending(1000)
    summaries = [codec.decode("summary", r.body.encode()) for r in rows]
    assert all(isinstance(s, Summary) for s in summaries)
    assert sum(s.frames.seen for s in summaries) == seen
    assert sum(len(s.merged_seqs or [s.seq]) for s in summaries) == 48
    assert sum(s.window.windows for s in summaries) == 48
    outbox.close()


def test_decode_prints_real_payloads_and_refuses_damaged_ones(
        replayed: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference: ReferenceProfile = replayed["reference"]
    outbox = Outbox(tmp_path / "o.db", device="cam-1", boot_id="b", clock=ManualClock(),
                    max_bytes=1 << 20, max_age_s=0.0, merge=None)
    window = replay_windows(replayed)[2]
    outbox.put("summary", msgspec.to_builtins(window.to_wire()), attach_loss=True)
    [row] = outbox.pending(1)
    outbox.close()
    payload = codec.encode(row.payload)  # what the publisher sends (msgpack+zlib)
    (tmp_path / "summary.bin").write_bytes(payload)
    assert main(["decode", str(tmp_path / "summary.bin")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["schema"] == "edgewatch.summary/2" and printed["seq"] == 1
    assert msgspec.convert(printed, Summary) == codec.decode("summary", payload)
    assert printed["frames"]["seen"] == window.frames.seen
    # a JSON lines file: every replay line, then a reference profile (one indented document)
    out = tmp_path / "replay.jsonl"
    out.write_text("\n".join(json.dumps(line) for line in replayed["lines"]) + "\n")
    assert main(["decode", str(out)]) == 0
    docs = capsys.readouterr().out.replace("}\n{", "}\x00{").split("\x00")
    assert [json.loads(d)["window"]["start"] for d in docs] == [
        line["window"]["start"] for line in replayed["lines"]]
    reference.save(tmp_path / "ref.json")
    assert main(["decode", str(tmp_path / "ref.json"), "--leaf", "reference"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == reference.id
    # refused: truncated, the wrong type, a line out of bounds
    (tmp_path / "cut.bin").write_bytes(payload[:-10])
    assert main(["decode", str(tmp_path / "cut.bin")]) == 1
    assert "rejected (encoding)" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "summary.bin"), "--leaf", "alert"]) == 1
    assert "rejected (schema)" in capsys.readouterr().err
    bad = dict(replayed["lines"][0], frames={**replayed["lines"][0]["frames"], "seen": -1})
    out.write_text(json.dumps(replayed["lines"][1]) + "\n" + json.dumps(bad) + "\n")
    assert main(["decode", str(out)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["window"]["start"] == replayed["lines"][1]["window"]["start"]
    assert f"{out}:2: rejected (invalid)" in captured.err and "seen" in captured.err
