"""Throughput of a bare onnxruntime loop against edgewatch's monitored pipeline.

    python bench/pipeline.py [--assets DIR] [--repeats 5] [--frames 300] [--json PATH]

SSDLite-MobileNetV2 on vtest.avi, frames decoded into memory first. Every configuration
runs once per round and rounds repeat, so bare and monitored runs are interleaved; the
ratio of a row is the median of its per-round ratios to the bare run of the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from edgewatch.agent import Agent, build_reference, make_measurer
from edgewatch.config import AgentConfig, parse_config
from edgewatch.image_features import ImageFeatureExtractor
from edgewatch.inference import InferenceEngine
from edgewatch.records import Frame, Image
from edgewatch.reference import ReferenceProfile
from edgewatch.sinks import ListSink
from edgewatch.sources import open_source
from edgewatch.summary import WindowSummary
from edgewatch.window import WindowAccumulator

FPS = 10.0  # vtest's own frame rate, for the frames' timestamps
REFERENCE_LAST = 399
FEATURE_FRAMES = 100
WARMUP_FRAMES = 20
Extras = dict[str, float]
Runner = Callable[[list[Image]], tuple[float, Extras]]


@dataclass
class Row:
    name: str
    run: Runner
    fps: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    extras: dict[str, list[float]] = field(default_factory=dict)

    def record(self, fps: float, bare_fps: float, extras: Extras) -> None:
        self.fps.append(fps)
        self.ratios.append(fps / bare_fps)
        for key, value in extras.items():
            self.extras.setdefault(key, []).append(value)

    def medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.extras.items()}


def assets_dir(arg: str | None) -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
    return Path(arg or os.environ.get("EDGEWATCH_ASSETS") or default)


def make_config(assets: Path, **model: Any) -> AgentConfig:
    paths = {"path": str(assets / "models/ssdlite_mobilenet_v2_coco.onnx"),
             "labels": str(assets / "models/coco_labels.txt")}
    return parse_config({"model": {**paths, **model}})


def load_frames(video: Path, count: int) -> list[Image]:
    cap = cv2.VideoCapture(str(video))
    frames: list[Image] = []
    while len(frames) < count:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    if not frames:
        sys.exit(f"cannot read frames from {video}")
    return frames


def timed_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def bare_runner(model: str, spinning: str | None = None) -> Runner:
    opts = ort.SessionOptions()  # onnxruntime defaults unless a variant changes spinning
    if spinning is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(frames: list[Image]) -> tuple[float, Extras]:
        t0 = time.perf_counter()
        run_ms = [timed_ms(lambda img=img: session.run(  # type: ignore[misc]
            None, {name: cv2.cvtColor(img, cv2.COLOR_BGR2RGB)[None]})) for img in frames]
        return len(frames) / (time.perf_counter() - t0), {"run_ms": statistics.median(run_ms)}
    return run


def engine_runner(cfg: AgentConfig) -> Runner:
    engine = InferenceEngine(cfg.model)

    def run(frames: list[Image]) -> tuple[float, Extras]:
        t0 = time.perf_counter()
        timings = [engine.infer(img).timings for img in frames]
        fps = len(frames) / (time.perf_counter() - t0)
        return fps, {"run_ms": statistics.median(t.inference_ms for t in timings)}
    return run


def window_facts(summaries: list[WindowSummary]) -> Extras:
    total = summaries[0]
    for s in summaries[1:]:
        total.merge(s)
    return {"dropped": total.frames.dropped, "monitored": total.frames.monitored,
            "run_ms": total.latency["inference_ms"].quantile(0.5),
            "monitor_ms": total.latency["monitor_ms"].quantile(0.5)}


def monitored_runner(cfg: AgentConfig, reference: ReferenceProfile) -> Runner:
    engine = InferenceEngine(cfg.model)

    def run(frames: list[Image]) -> tuple[float, Extras]:
        sink = ListSink()
        monitor = Agent(cfg, engine, reference, sink, live=False).monitor  # Agent's own wiring
        t0 = time.perf_counter()
        for i, img in enumerate(frames):
            monitor.observe(Frame(i, i / FPS, img), engine.infer(img))
        t1 = time.perf_counter()
        monitor.close()
        close_ms = (time.perf_counter() - t1) * 1e3
        return len(frames) / (t1 - t0), {**window_facts(sink.summaries), "close_ms": close_ms}
    return run


def build_rows(assets: Path, reference: ReferenceProfile) -> list[Row]:
    default = make_config(assets)
    model = default.model.path
    return [
        Row("bare (ort defaults)", bare_runner(model)),
        Row("monitored (edgewatch defaults)", monitored_runner(default, reference)),
        Row("bare allow_spinning=0", bare_runner(model, "0")),
        Row("monitored allow_spinning=false",
            monitored_runner(make_config(assets, allow_spinning=False), reference)),
        Row("monitored intra_op_threads=1",
            monitored_runner(make_config(assets, intra_op_threads=1), reference)),
        Row("engine only (no monitor)", engine_runner(default)),
    ]


def make_reference(assets: Path) -> ReferenceProfile:
    cfg = make_config(assets)
    source = open_source(str(assets / "video/vtest.avi"), first=0, last=REFERENCE_LAST)
    return build_reference(cfg, InferenceEngine(cfg.model), source, show_progress=False)


def run_rounds(rows: list[Row], frames: list[Image], repeats: int) -> None:
    for row in rows:
        row.run(frames[:WARMUP_FRAMES])
    for r in range(repeats):
        bare_fps = 0.0
        for row in rows:
            fps, extras = row.run(frames)
            bare_fps = bare_fps or fps  # the first row is the bare loop of this round
            row.record(fps, bare_fps, extras)
        print(f"round {r + 1}/{repeats}: " + ", ".join(f"{x.fps[-1]:.1f}" for x in rows),
              file=sys.stderr, flush=True)


def per_frame_ms(fn: Callable[[int], object], n: int, repeats: int) -> float:
    rounds = [statistics.median(timed_ms(lambda i=i: fn(i)) for i in range(n))  # type: ignore[misc]
              for _ in range(repeats)]
    return statistics.median(rounds)


def feature_costs(cfg: AgentConfig, reference: ReferenceProfile, frames: list[Image],
                  repeats: int) -> Extras:
    """Per-frame ms of the monitor worker's stages, single-threaded OpenCV."""
    engine = InferenceEngine(cfg.model)
    items = [Frame(i, i / FPS, img) for i, img in enumerate(frames[:FEATURE_FRAMES])]
    results = [engine.infer(f.image) for f in items if f.image is not None]
    measurer, images = make_measurer(cfg), ImageFeatureExtractor(cfg.features.analysis_width)
    measured = [measurer(f, r) for f, r in zip(items, results)]
    acc = WindowAccumulator(reference, 0.0, 0.0)
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        n = len(items)
        return {
            "FrameMeasurer": per_frame_ms(lambda i: measurer(items[i], results[i]), n, repeats),
            "ImageFeatureExtractor": per_frame_ms(lambda i: images(frames[i]), n, repeats),
            "WindowAccumulator.add": per_frame_ms(lambda i: acc.add(measured[i]), n, repeats),
        }
    finally:
        cv2.setNumThreads(previous)


def notes(row: Row) -> str:
    m = row.medians()
    parts = [f"fps {min(row.fps):.1f}..{max(row.fps):.1f}", f"run {m['run_ms']:.2f} ms"]
    if "dropped" in m:
        parts += [f"dropped {max(row.extras['dropped']):.0f}/{len(row.extras['dropped'])} runs "
                  f"(median {m['dropped']:.0f}, monitored {m['monitored']:.0f})",
                  f"monitor_ms p50 {m['monitor_ms']:.2f}", f"close {m['close_ms']:.0f} ms"]
    return "; ".join(parts)


def machine_facts() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "onnxruntime": ort.__version__, "opencv": cv2.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def report(rows: list[Row], facts: dict[str, Any], costs: Extras, nframes: int) -> None:
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    print(f"frames per run: {nframes} (768x576, in memory); rounds: {len(rows[0].fps)}")
    print(f"{'name':<32} {'fps med':>8} {'ratio':>6}  notes")
    for row in rows:
        print(f"{row.name:<32} {statistics.median(row.fps):>8.1f} "
              f"{statistics.median(row.ratios):>6.3f}  {notes(row)}")
    print("feature cost, ms/frame (cv2 1 thread, median): "
          + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))
    print(f"peak RSS: {facts['peak_rss_mib']:.0f} MiB (of which frames "
          f"{facts['frames_mib']:.0f} MiB)")


def to_json(rows: list[Row], facts: dict[str, Any], costs: Extras) -> dict[str, Any]:
    return {"machine": facts, "feature_cost_ms": costs, "rows": [
        {"name": r.name, "fps": r.fps, "fps_median": statistics.median(r.fps),
         "ratios": r.ratios, "ratio_median": statistics.median(r.ratios),
         "extras": r.extras} for r in rows]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", help="assets directory (default: $EDGEWATCH_ASSETS, "
                                    "else <repo>/../shared/assets)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--json", help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    assets = assets_dir(args.assets)
    frames = load_frames(assets / "video/vtest.avi", args.frames)
    reference = make_reference(assets)
    rows = build_rows(assets, reference)
    run_rounds(rows, frames, args.repeats)
    costs = feature_costs(make_config(assets), reference, frames, args.repeats)
    facts = machine_facts()
    facts["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    facts["frames_mib"] = sum(f.nbytes for f in frames) / 2**20
    report(rows, facts, costs, len(frames))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(rows, facts, costs), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
