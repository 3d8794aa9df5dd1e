"""End to end on real footage: profile build, replay, and exact merging of windows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from conftest import ssd_config_dict
from edgewatch.agent import Agent
from edgewatch.cli import main
from edgewatch.config import parse_config
from edgewatch.image_features import IMAGE_FEATURES
from edgewatch.inference import InferenceEngine
from edgewatch.output_features import DETECTOR_FEATURES
from edgewatch.reference import ReferenceProfile
from edgewatch.sinks import ListSink
from edgewatch.sources import open_source
from edgewatch.summary import WindowSummary


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
    example = json.loads((Path(__file__).parent / "data" / "summary-example.json").read_text())
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
        assert line["resources"]["process_rss_mb"] > 0


def test_merged_windows_equal_the_whole_run(replayed: dict, assets: Path, vtest: Path) -> None:
    reference: ReferenceProfile = replayed["reference"]
    windows = [WindowSummary.from_dict(line, reference) for line in replayed["lines"]]
    merged = windows[0]
    for w in windows[1:]:
        merged.merge(w)
    # The same footage through one single window.
    cfg = parse_config(ssd_config_dict(assets, window={"seconds": 1e7}))
    sink = ListSink()
    agent = Agent(cfg, InferenceEngine(cfg.model), reference, sink, live=False, lossless=True)
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
    out.write_text("\n".join(json.dumps(line) for line in replayed["lines"]))
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2026-01-01 00:00:00" in text and len(text.splitlines()) == 9
