"""Throughput of a bare onnxruntime loop against edgewatch's monitored pipeline.

    python bench/pipeline.py [--assets DIR] [--repeats 5] [--frames 300] [--json PATH]

SSDLite-MobileNetV2 on vtest.avi, frames decoded into memory before timing. Every run is
a fresh child process (no shared thread pools or allocators; its own peak RSS), the
configurations alternate round by round, and a row's ratio is the median of its ratios to
the bare run of the same round. "foreign" is the CPU share other processes used meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
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
from edgewatch.window import WindowAccumulator

FPS = 10.0  # vtest's own frame rate, for the frames' timestamps
WARMUP_FRAMES = 20
FEATURE_FRAMES = 100
MAX_FOREIGN, RETRIES = 0.1, 3  # a run during which others used > 10% of the CPU is redone
Result = dict[str, float]
Loop = Callable[[list[Image]], Result]
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {  # name: (loop, model settings)
    "bare (ort defaults)": ("bare", {}),
    "monitored (edgewatch defaults)": ("monitored", {}),
    "bare allow_spinning=0": ("bare", {"allow_spinning": False}),
    "monitored allow_spinning=false": ("monitored", {"allow_spinning": False}),
    "monitored intra_op_threads=1": ("monitored", {"intra_op_threads": 1}),
    "engine only (no monitor)": ("engine", {}),
}


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
    while len(frames) < count and (read := cap.read())[0]:
        frames.append(read[1])
    cap.release()
    if not frames:
        sys.exit(f"cannot read frames from {video}")
    return frames


def cpu_busy() -> float:
    """Busy CPU seconds of the whole machine since boot."""
    with open("/proc/stat", encoding="ascii") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def bare_loop(cfg: AgentConfig) -> Loop:
    opts = ort.SessionOptions()  # onnxruntime defaults, except in the no-spinning variant
    if not cfg.model.allow_spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(cfg.model.path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def one(img: Image) -> float:  # the bare loop: BGR -> RGB, then session.run
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return timed_ms(partial(session.run, None, {name: rgb[None]}))

    def run(frames: list[Image]) -> Result:
        return {"run_ms": statistics.median([one(img) for img in frames])}
    return run


def engine_loop(cfg: AgentConfig) -> Loop:
    engine = InferenceEngine(cfg.model)

    def run(frames: list[Image]) -> Result:
        timings = [engine.infer(img).timings for img in frames]
        return {"run_ms": statistics.median(t.inference_ms for t in timings)}
    return run


def monitored_loop(cfg: AgentConfig, reference: ReferenceProfile) -> Loop:
    engine = InferenceEngine(cfg.model)

    def run(frames: list[Image]) -> Result:
        sink = ListSink()
        monitor = Agent(cfg, engine, reference, sink, live=False).monitor  # Agent's wiring
        for i, img in enumerate(frames):
            monitor.observe(Frame(i, i / FPS, img), engine.infer(img))
        close_ms = timed_ms(monitor.close)  # drains the queue: outside the timed loop
        total = sink.summaries[0]
        for s in sink.summaries[1:]:
            total.merge(s)
        return {"dropped": total.frames.dropped, "monitored": total.frames.monitored,
                "run_ms": total.latency["inference_ms"].quantile(0.5),
                "monitor_ms": total.latency["monitor_ms"].quantile(0.5), "close_ms": close_ms}
    return run


def child(args: argparse.Namespace) -> int:
    """One timed run of one variant; prints its numbers as one JSON line."""
    kind, model = VARIANTS[args.child]
    cfg = make_config(assets_dir(args.assets), **model)
    frames = load_frames(assets_dir(args.assets) / "video/vtest.avi", args.frames)
    loop = (monitored_loop(cfg, ReferenceProfile.load(args.reference)) if kind == "monitored"
            else engine_loop(cfg) if kind == "engine" else bare_loop(cfg))
    loop(frames[:WARMUP_FRAMES])
    busy, own, t0 = cpu_busy(), own_cpu(), time.perf_counter()
    out = loop(frames)
    elapsed = time.perf_counter() - t0
    wall = elapsed - out.get("close_ms", 0.0) / 1e3
    foreign = (cpu_busy() - busy - (own_cpu() - own)) / (elapsed * (os.cpu_count() or 1))
    out |= {"fps": len(frames) / wall, "foreign": max(foreign, 0.0),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    print(json.dumps(out))
    return 0


def wait_idle(limit: float, busy_max: float = 0.1) -> None:
    """Wait (up to ``limit`` seconds) for a second in which other processes use < busy_max."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy = cpu_busy()
        time.sleep(1.0)
        if (cpu_busy() - busy) / (os.cpu_count() or 1) < busy_max:
            return


def run_child(name: str, args: argparse.Namespace, reference: str) -> Result:
    """One run in a fresh process, repeated while other processes took too much CPU."""
    cmd = [sys.executable, __file__, "--child", name, "--frames", str(args.frames),
           "--reference", reference] + (["--assets", args.assets] if args.assets else [])
    for _ in range(RETRIES):
        wait_idle(args.wait_idle)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"{name}: child failed\n{done.stderr}")
        result: Result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["foreign"] <= MAX_FOREIGN:
            break
    return result


def run_rounds(args: argparse.Namespace, reference: str) -> dict[str, list[Result]]:
    runs: dict[str, list[Result]] = {name: [] for name in VARIANTS}
    bare = next(iter(VARIANTS))  # runs first in every round
    for r in range(args.repeats):
        for name in VARIANTS:
            runs[name].append(result := run_child(name, args, reference))
            result["ratio"] = result["fps"] / runs[bare][-1]["fps"]
        print(f"round {r + 1}/{args.repeats}: "
              + ", ".join(f"{v[-1]['fps']:.1f}" for v in runs.values()), file=sys.stderr)
    return runs


def per_frame_ms(fn: Callable[[int], object], n: int, repeats: int) -> float:
    return statistics.median(
        statistics.median(timed_ms(partial(fn, i)) for i in range(n))
        for _ in range(repeats))


def feature_costs(cfg: AgentConfig, reference: ReferenceProfile, frames: list[Image],
                  repeats: int) -> Result:
    """Per-frame ms of the monitor worker's stages on 768x576 frames, OpenCV single-threaded."""
    engine = InferenceEngine(cfg.model)
    items = [Frame(i, i / FPS, img) for i, img in enumerate(frames[:FEATURE_FRAMES])]
    results = [engine.infer(img) for img in frames[:FEATURE_FRAMES]]
    measurer, images = make_measurer(cfg), ImageFeatureExtractor(cfg.features.analysis_width)
    measured = [measurer(f, r) for f, r in zip(items, results, strict=True)]
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


def med(runs: list[Result], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def notes(runs: list[Result]) -> str:
    fps = [r["fps"] for r in runs]
    foreign = max(r["foreign"] for r in runs)
    parts = [f"fps {min(fps):.1f}..{max(fps):.1f}", f"run {med(runs, 'run_ms'):.2f} ms",
             f"foreign {med(runs, 'foreign'):.0%} (max {foreign:.0%})",
             f"peak rss {med(runs, 'peak_rss_mib'):.0f} MiB"]
    if "dropped" in runs[0]:
        parts += [f"dropped {med(runs, 'dropped'):.0f} (max {max(r['dropped'] for r in runs):.0f}"
                  f") of {runs[0]['monitored'] + runs[0]['dropped']:.0f}",
                  f"monitor_ms p50 {med(runs, 'monitor_ms'):.2f}",
                  f"close {med(runs, 'close_ms'):.0f} ms"]
    return "; ".join(parts)


def machine_facts() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "onnxruntime": ort.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine()}


def report(runs: dict[str, list[Result]], costs: Result, frames: int) -> None:
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine_facts().items()))
    print(f"frames per run: {frames} (768x576, {frames * 768 * 576 * 3 / 2**20:.0f} MiB in "
          f"memory); rounds: {len(runs[next(iter(runs))])}; each run in a fresh process")
    print(f"{'name':<32} {'fps med':>8} {'ratio':>6}  notes")
    for name, rs in runs.items():
        print(f"{name:<32} {med(rs, 'fps'):>8.1f} {med(rs, 'ratio'):>6.3f}  {notes(rs)}")
    print("feature cost, ms/frame (cv2 1 thread, median): "
          + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--assets", help="default: $EDGEWATCH_ASSETS, else <repo>/../shared/assets")
    p.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--frames", type=int, default=300, help="frames per run (default 300)")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.add_argument("--wait-idle", type=float, default=60.0, metavar="S",
                   help="before each run, wait up to S seconds for an idle machine (default 60)")
    p.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--reference", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    assets, cfg = assets_dir(args.assets), make_config(assets_dir(args.assets))
    source = open_source(str(assets / "video/vtest.avi"), first=0, last=399)
    reference = build_reference(cfg, InferenceEngine(cfg.model), source, show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        reference.save(Path(tmp) / "reference.json")
        runs = run_rounds(args, str(Path(tmp) / "reference.json"))
    frames = load_frames(assets / "video/vtest.avi", FEATURE_FRAMES)
    wait_idle(args.wait_idle)
    costs = feature_costs(cfg, reference, frames, args.repeats)
    report(runs, costs, args.frames)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine_facts(), "feature_cost_ms": costs, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
