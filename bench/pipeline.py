"""Throughput of a bare onnxruntime loop against edgewatch's monitored pipeline.

    python bench/pipeline.py [--assets DIR] [--repeats 5] [--frames 300] [--block 10]
                             [--model ssd|centerface] [--size WxH]
                             [--pace camera|footage] [--set features.every_nth=2 ...]
                             [--evidence] [--shadow] [--json PATH]

vtest.avi's frames decoded into memory before timing, through one of two real models
(``--model``):

- ``ssd`` (the default): SSDLite-MobileNetV2 (``adapter = "ssd"``), uint8 RGB frames at
  their own 768x576 (the graph resizes them); the bare loop converts BGR to RGB;
- ``centerface``: the CenterFace face detector (``adapter = "raw"``: tensor statistics of
  its four outputs, 184 KB a frame at the default size) on frames resized to ``--size``
  (default 256x192), float32 NCHW RGB; the bare loop resizes, converts BGR to RGB, to
  float32 and to NCHW, as edgewatch's pre-processing does. A smaller model input than
  SSDLite's: a model several times faster on the same processor, as on an accelerator
  board, where edgewatch's cost per frame weighs more. The file declares a fixed input
  shape; the bench loads a copy with free dimensions (``evidence.shapes.dynamic_dims``).

The two loops run interleaved in one process on the same onnxruntime session, in blocks of
``--block`` frames, in the order bare, monitored, monitored, bare, ... A pair's ratio is
bare time over monitored time for the same frames a moment apart, so the slow swings of a
shared machine cancel out; the table gives the median over all pairs. A monitored block
ends only when the monitor thread has measured all of its frames, so none of its work
spills into a bare block. A round during which other processes used more than 10% of the
CPU is redone.

Where edgewatch's cost goes, measured directly, not inferred from the ratio:

- **inference thread**: per monitored-loop frame, the wall time of ``Agent.process`` minus
  the pre-processing and ``session.run`` times the engine records in the frame's
  ``Timings`` (median, mean and p90 over frames): the counting, the sampling decision, the
  buffer of frames not sampled, for a sampled frame the queue put, and the finite checks
  of outputs run at once (when the monitor holds too many waiting). The median is a
  typical frame's; the mean is the cost per frame, with the frames not sampled counted a
  batch at a time (every 32 frames at most: one frame in a batch pays for them all) and
  the frames the system took the thread away from. The pre-processing is
  printed beside the bare loop's (SSDLite: its cvtColor). The loops keep their clock
  readings as they are; the figures are worked out after each block's timing;
- **monitor thread**: its CPU time (its thread CPU clock) over the monitored blocks, drains
  included, per frame seen and per monitored frame, and as a share of one core over the
  monitored loop's time: the CPU it can take from onnxruntime's threads;
- **per block**: the monitored block's time minus its bare pair's (medians), split by
  whether the monitor measured a frame in the block (``Monitor.measured``): what every
  frame costs, in µs per frame, and what one measured frame adds.

The ratio's 95% interval is the median's, from the order statistics of the pairs.

The session is the one edgewatch opens, which with the default model settings is an
onnxruntime session with its defaults, so ``--set model.*`` changes both loops.

``--pace`` sets the frames' timestamps, which the sampling (``features.max_fps``, 2.5
frames per second of stream time by default) follows:

- ``camera`` (the default): each frame is stamped when the loop takes it, by a clock that
  runs during the monitored blocks only: a camera that always has the next frame ready,
  the model being the bottleneck. This is what ``edgewatch run`` sees, whose sources are
  stamped by the clock (a camera, a stream) or played in real time (a file): the monitor
  measures 2.5 frames per second of the loop's time however fast the model runs;
- ``footage``: vtest's own timestamps (10 fps) on frames run as fast as the model goes, as
  recorded footage faster than real time: one frame in 4 is measured, about 40 per second
  of the loop's time here, which no ``run`` does (``replay`` does, but waits for the
  monitor instead of skipping).

``--set features.max_fps=0`` measures every frame.

``--evidence`` turns evidence capture on (``[evidence]`` defaults, in a temporary
directory) in the monitored loop: every monitored frame goes through the capture thread into
the pre-trigger ring (raw: no encoding while ``evidence.ring_mb`` holds ``pre_frames`` of
them) and routine frames are JPEG-encoded and written; ``--set
evidence.near_threshold_per_hour=36000`` makes it write every frame with near-threshold
detections (at most ``evidence.max_per_hour``), ``--set evidence.ring_mb=1`` makes the ring
encode every monitored frame (the cost before the ring kept frames raw). The report gives
the capture's counters and its JPEG encodings (``encoded``).

``--shadow`` runs a model update's shadow during the whole benchmark (the same SSD file
staged as a candidate; ``update.*`` defaults, ``--set update.sample_every=N`` to change
how many frames it is offered): the monitored loop offers every Nth frame to the shadow
thread (two one-thread onnxruntime sessions, the current model and the candidate, a bounded
queue that drops when behind), so the ratio is the live loop's rate with a shadow active.
The report gives the shadow's counters (offered, dropped, compared).
"""

from __future__ import annotations

import argparse
import atexit
import copy
import dataclasses
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from edgewatch.agent.app import build_agent, make_measurer
from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.inference.engine import InferenceEngine, file_sha256
from edgewatch.agent.measure.image import ImageFeatureExtractor
from edgewatch.agent.profiling import build_reference
from edgewatch.agent.records import Frame, Image
from edgewatch.agent.source import open_source
from edgewatch.agent.update.lifecycle import UpdateManager
from edgewatch.agent.update.staged import StagedUpdate
from edgewatch.agent.window.accumulator import WindowAccumulator
from edgewatch.agent.window.monitor import Monitor
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import AgentConfig, parse_config

MODELS = ("ssd", "centerface")
FPS = 10.0  # vtest's own frame rate, for the frames' timestamps (--pace footage)
STREAM_START = 1.7e9  # --pace camera: the stream clock's reading at the first frame
WARMUP_FRAMES = 20
FEATURE_FRAMES = 100
MAX_FOREIGN, RETRIES = 0.1, 3  # a round during which others used > 10% of the CPU is redone
Result = dict[str, float]


@dataclass
class Round:
    """One pass over the frames: each pair's bare/monitored time ratio, and totals."""

    ratios: list[float]
    bare_fps: float
    monitored_fps: float
    foreign: float = 0.0

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def assets_dir(arg: str | None) -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
    return Path(arg or os.environ.get("EDGEWATCH_ASSETS") or default)


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@dataclass(frozen=True)
class Workload:
    """A model, its ``[model]`` settings, and what the bare loop does to a frame before
    ``session.run`` (the same as edgewatch's pre-processing, written with OpenCV and numpy)."""

    name: str
    model: dict[str, Any]
    bare_input: Callable[[Image], np.ndarray]
    frame_size: str
    bare_step: str
    """What the report calls the bare loop's pre-processing."""

    @staticmethod
    def ssd(assets: Path) -> Workload:
        return Workload("SSDLite-MobileNetV2", {
            "path": str(assets / "models/ssdlite_mobilenet_v2_coco.onnx"),
            "labels": str(assets / "models/coco_labels.txt")},
            lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2RGB)[None], "768x576", "cvtColor")

    @staticmethod
    def centerface(assets: Path, size: tuple[int, int]) -> Workload:
        from edgewatch.agent.evidence.shapes import dynamic_dims

        work = tempfile.mkdtemp(prefix="edgewatch-bench-model-")
        atexit.register(shutil.rmtree, work, ignore_errors=True)
        path = Path(work) / "centerface.onnx"
        path.write_bytes(dynamic_dims((assets / "models/centerface.onnx").read_bytes()))
        width, height = size

        def bare_input(img: Image) -> np.ndarray:
            small = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
            rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32)
            return np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]

        return Workload("CenterFace", {
            "path": str(path), "adapter": "raw", "preprocess": {
                "width": width, "height": height, "layout": "NCHW", "dtype": "float32"}},
            bare_input, f"768x576 resized to {width}x{height}", "pre-processing")


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not WIDTHxHEIGHT: {text!r}") from None
    if min(size) < 32 or size[0] % 32 or size[1] % 32:
        raise argparse.ArgumentTypeError("CenterFace needs multiples of 32, at least 32")
    return size


def make_config(workload: Workload, overrides: list[str]) -> AgentConfig:
    data: dict[str, Any] = {"model": copy.deepcopy(workload.model)}
    for item in overrides:
        key, _, value = item.partition("=")
        *sections, leaf = key.split(".")
        node = data
        for name in sections:
            node = node.setdefault(name, {})
        node[leaf] = parse_value(value)
    return parse_config(data)


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


class PairedLoops:
    """The bare loop and the monitored loop on one engine's onnxruntime session."""

    def __init__(self, cfg: AgentConfig, reference: ReferenceProfile, workload: Workload,
                 shadow: bool = False, pace: str = "camera") -> None:
        self.pace = pace
        self.bare_input = workload.bare_input
        self.engine = InferenceEngine(cfg.model)
        self.sink = ListSink()
        self.agent = build_agent(cfg, reference, engine=self.engine, sink=self.sink,
                                 publish=False, live=False)
        self.shadow: dict[str, Any] | None = None
        if shadow:
            self.agent.update = start_shadow(cfg, self.engine)
        self.monitor: Monitor = self.agent.monitor
        self.index = 0
        self.evidence: dict[str, int] | None = None
        self.own_us: list[float] = []
        """Per monitored frame: Agent.process's time outside pre-processing and session.run."""
        self.preprocess_us: list[float] = []
        self.run_us: list[float] = []
        """Per monitored frame: session.run (the engine's inference_ms)."""
        self.bare_run_us: list[float] = []
        self.cvt_us: list[float] = []
        """Per bare frame: the bare loop's pre-processing (SSD: its cvtColor)."""
        self._bare_readings: list[tuple[float, float, float]] = []
        self._taken: list[tuple[float, Any]] = []
        self.monitor_cpu_s = 0.0
        """Monitor thread CPU time during the monitored blocks (their drains included)."""
        self.monitored_s = 0.0
        self.block_measured = 0
        """Frames the monitor measured during the last monitored block."""
        self.extra_ms: dict[bool, list[float]] = {False: [], True: []}
        """Per pair: monitored block time minus bare block time, by whether the monitored
        block measured a frame."""

    def bare(self, frames: list[Image]) -> None:
        """What an application does without edgewatch: its pre-processing (SSD: BGR ->
        RGB), then session.run. Its clock readings are kept as they are (``account``)."""
        session, name = self.engine.session, self.engine.input.name
        clock, prepare, readings = time.perf_counter, self.bare_input, self._bare_readings
        for img in frames:
            t0 = clock()
            tensor = prepare(img)
            t1 = clock()
            session.run(None, {name: tensor})
            readings.append((t0, t1, clock()))

    def monitored(self, frames: list[Image]) -> None:
        """What ``Agent.run`` does per frame; each frame's time in ``Agent.process`` and its
        result are kept as they are (``account``)."""
        clock, process = time.perf_counter, self.agent.process
        taken = self._taken
        cpu0, measured0, t0 = self.monitor.cpu_seconds(), self.monitor.measured, clock()
        camera = self.pace == "camera"
        for img in frames:  # what Agent.run does per frame
            # camera: stamped when taken, by a clock that runs during the monitored blocks
            # only (a camera that always has the next frame ready for this loop)
            stamp = STREAM_START + self.monitored_s + (clock() - t0) if camera \
                else self.index / FPS
            frame = Frame(self.index, stamp, img)
            start = clock()
            result = process(frame)
            taken.append((clock() - start, result))
            self.index += 1
        self.monitor.drain()
        self.monitored_s += clock() - t0
        self.monitor_cpu_s += self.monitor.cpu_seconds() - cpu0
        self.block_measured = self.monitor.measured - measured0

    def account(self) -> None:
        """The per-frame figures of the last blocks, worked out after their timing (the
        loops keep their clock readings and results as they are: the bookkeeping of a
        benchmark is no part of either loop's time)."""
        for t0, t1, t2 in self._bare_readings:
            self.cvt_us.append((t1 - t0) * 1e6)
            self.bare_run_us.append((t2 - t1) * 1e6)
        for took, result in self._taken:
            if result is not None:
                t = result.timings
                self.own_us.append(took * 1e6 - (t.preprocess_ms + t.inference_ms) * 1e3)
                self.preprocess_us.append(t.preprocess_ms * 1e3)
                self.run_us.append(t.inference_ms * 1e3)
        self._bare_readings.clear()
        self._taken.clear()

    def round(self, frames: list[Image], block: int) -> Round:
        """One pass over ``frames`` in alternating blocks; medians of its pairs."""
        ratios: list[float] = []
        bare_ms = monitored_ms = 0.0
        for p, i in enumerate(range(0, len(frames) - block + 1, block)):
            chunk = frames[i:i + block]
            if p % 2:
                tm = timed_ms(partial(self.monitored, chunk))
                tb = timed_ms(partial(self.bare, chunk))
            else:
                tb = timed_ms(partial(self.bare, chunk))
                tm = timed_ms(partial(self.monitored, chunk))
            self.account()
            ratios.append(tb / tm)
            self.extra_ms[self.block_measured > 0].append(tm - tb)
            bare_ms, monitored_ms = bare_ms + tb, monitored_ms + tm
        n = len(ratios) * block
        return Round(ratios, n / bare_ms * 1e3, n / monitored_ms * 1e3)

    def close(self) -> Result:
        self.monitor.close()
        update = self.agent.update
        if update is not None:
            self.shadow = {**update.shadow_counters(), "state": update.state.get("state", "")}
            update.close()
        evidence = self.agent.outputs.evidence
        if evidence is not None:
            evidence.drain()
            self.evidence = {**evidence.totals, "encoded": evidence.encoded}
            evidence.close()
        total = self.sink.summaries[0]
        for s in self.sink.summaries[1:]:
            total.merge(s)
        return {"seen": total.frames.seen, "monitored": total.frames.monitored,
                "dropped": total.frames.dropped, "sampled_out": total.frames.sampled_out,
                "monitor_ms": total.latency["monitor_ms"].quantile(0.5),
                **self.thread_costs()}

    def thread_costs(self) -> Result:
        """What edgewatch costs per frame: on the inference thread (medians over frames, in
        µs) and on the monitor thread (CPU time over all monitored blocks)."""
        frames = len(self.own_us) or 1
        return {"own_us": statistics.median(self.own_us),
                "own_us_mean": statistics.fmean(self.own_us),
                "own_us_p90": statistics.quantiles(self.own_us, n=10)[-1],
                "preprocess_us": statistics.median(self.preprocess_us),
                "cvt_us": statistics.median(self.cvt_us),
                "run_us": statistics.median(self.run_us),
                "bare_run_us": statistics.median(self.bare_run_us),
                "monitor_cpu_us": self.monitor_cpu_s / frames * 1e6,
                "monitor_cpu_share": self.monitor_cpu_s / self.monitored_s
                if self.monitored_s else 0.0,
                **self.block_costs()}

    def block_costs(self) -> Result:
        """The monitored block's extra time over its bare pair (medians), split by whether
        the monitor measured a frame in it: edgewatch's cost on every frame, and what one
        measured frame adds (its measurement, waited for by the block's drain)."""
        plain, measured = self.extra_ms[False], self.extra_ms[True]
        base = statistics.median(plain) if plain else math.nan
        return {"plain_pairs": len(plain), "measured_pairs": len(measured),
                "plain_extra_ms": base,
                "measured_extra_ms": statistics.median(measured) - base if measured
                else math.nan}


def start_shadow(cfg: AgentConfig, engine: InferenceEngine) -> UpdateManager:
    """An update lifecycle whose shadow lasts the whole benchmark: the running model's
    file staged as a candidate, in a temporary models directory."""
    work = Path(tempfile.mkdtemp(prefix="edgewatch-bench-shadow-"))
    staged = work / "staging" / "model.onnx"
    staged.parent.mkdir(parents=True)
    shutil.copyfile(cfg.model.path, staged)
    cfg = dataclasses.replace(cfg, update=dataclasses.replace(
        cfg.update, models_dir=str(work / "models"), shadow_frames=10**9,
        shadow_seconds=10.0**6))
    manager = UpdateManager(cfg, engine, device="bench")
    manager.received(StagedUpdate("bench-shadow", staged.parent, staged,
                                  file_sha256(staged)))
    return manager


def run_rounds(loops: PairedLoops, frames: list[Image], args: argparse.Namespace) -> list[Round]:
    loops.round(frames[:WARMUP_FRAMES], min(args.block, WARMUP_FRAMES // 2))
    loops.extra_ms = {False: [], True: []}
    rounds: list[Round] = []
    for r in range(args.repeats):
        for _ in range(RETRIES):
            wait_idle(args.wait_idle)
            busy, own, t0 = cpu_busy(), own_cpu(), time.perf_counter()
            result = loops.round(frames, args.block)
            elapsed = time.perf_counter() - t0
            foreign = (cpu_busy() - busy - (own_cpu() - own)) / (elapsed * (os.cpu_count() or 1))
            result.foreign = max(foreign, 0.0)
            if foreign <= MAX_FOREIGN:
                break
        rounds.append(result)
        note = f" (kept although others used {result.foreign:.0%} of the CPU)" \
            if result.foreign > MAX_FOREIGN else ""
        print(f"round {r + 1}/{args.repeats}: bare {result.bare_fps:.1f} fps, monitored "
              f"{result.monitored_fps:.1f} fps, ratio {result.ratio:.3f}{note}", file=sys.stderr)
    return rounds


def wait_idle(limit: float, busy_max: float = 0.1) -> None:
    """Wait (up to ``limit`` seconds) for a second in which other processes use < busy_max."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy = cpu_busy()
        time.sleep(1.0)
        if (cpu_busy() - busy) / (os.cpu_count() or 1) < busy_max:
            return


def median_interval(values: list[float], z: float = 1.96) -> tuple[float, float]:
    """A distribution-free 95% confidence interval of the median: the order statistics
    n/2 -/+ z*sqrt(n)/2 (the binomial's normal approximation)."""
    ordered = sorted(values)
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    return (ordered[max(0, math.floor(n / 2 - half))],
            ordered[min(n - 1, math.ceil(n / 2 + half))])


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


def machine_facts() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "onnxruntime": ort.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine()}


def report(args: argparse.Namespace, workload: Workload, rounds: list[Round], counts: Result,
           costs: Result, peak_rss: float, evidence: dict[str, int] | None = None,
           shadow: dict[str, Any] | None = None) -> None:
    prep = workload.bare_step
    ratios = [r for rd in rounds for r in rd.ratios]
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    per_round = [rd.ratio for rd in rounds]
    frames_mib = args.frames * 768 * 576 * 3 / 2**20
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine_facts().items()))
    on = " --evidence" if args.evidence else ""
    print(f"model: {workload.name}, frames {workload.frame_size}")
    print(f"settings: edgewatch defaults{on}{''.join(' ' + s for s in args.set)}; {args.frames} "
          f"frames per round in blocks of {args.block}; {len(rounds)} rounds, "
          f"{len(ratios)} pairs")
    print(f"bare onnxruntime loop      {statistics.median(rd.bare_fps for rd in rounds):7.1f}"
          " fps (median of rounds)")
    print(f"monitored loop             "
          f"{statistics.median(rd.monitored_fps for rd in rounds):7.1f} fps")
    low, high = median_interval(ratios)
    print(f"ratio monitored/bare       {q2:7.3f}  (median of pairs, 95% interval {low:.3f}.."
          f"{high:.3f}; quartiles {q1:.3f}..{q3:.3f}; rounds {min(per_round):.3f}.."
          f"{max(per_round):.3f})")
    print(f"frames monitored           {counts['monitored']:.0f} of {counts['seen']:.0f} "
          f"(dropped {counts['dropped']:.0f}, sampled out {counts['sampled_out']:.0f}); "
          f"monitor_ms p50 {counts['monitor_ms']:.2f}")
    print(f"inference thread           {counts['own_us']:7.1f} µs/frame of edgewatch's own "
          f"work (median; mean {counts['own_us_mean']:.1f}, p90 {counts['own_us_p90']:.1f}; "
          f"{counts['own_us'] / counts['cvt_us']:.2f} x the bare loop's {prep}): "
          f"Agent.process minus pre-processing and session.run")
    print(f"pre-processing             {counts['preprocess_us']:7.1f} µs/frame (median; the "
          f"bare loop's {prep} {counts['cvt_us']:.1f})")
    print(f"session.run                {counts['run_us']:7.1f} µs/frame (median; the bare "
          f"loop's {counts['bare_run_us']:.1f})")
    print(f"monitored - bare block      {counts['plain_extra_ms'] * 1e3 / args.block:7.1f} µs/"
          f"frame in blocks that measured no frame (median of {counts['plain_pairs']:.0f} "
          f"pairs); a block that measured one took {counts['measured_extra_ms']:.2f} ms more "
          f"(median of {counts['measured_pairs']:.0f})")
    bare_frame_us = 1e6 / statistics.median(rd.bare_fps for rd in rounds)
    print(f"monitor thread CPU         {counts['monitor_cpu_us']:7.1f} µs per frame seen "
          f"({counts['monitor_cpu_us'] * counts['seen'] / max(counts['monitored'], 1) / 1e3:.2f}"
          f" ms per monitored frame; {counts['monitor_cpu_us'] / bare_frame_us:.1%} of the "
          f"bare loop's time per frame; {counts['monitor_cpu_share']:.1%} of one core over "
          f"the monitored loop's time, drains included)")
    foreign = [rd.foreign for rd in rounds]
    print(f"foreign CPU                median {statistics.median(foreign):.0%} "
          f"(max {max(foreign):.0%})")
    print(f"peak RSS                   {peak_rss:.0f} MiB, of which {frames_mib:.0f} MiB are "
          f"the decoded frames")
    if evidence is not None:
        print("evidence                   " + ", ".join(f"{k} {v}" for k, v in evidence.items()))
    if shadow is not None:
        print("shadow                     " + ", ".join(f"{k} {v}" for k, v in shadow.items()))
    print("feature cost, ms/frame (cv2 1 thread, median): "
          + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--assets", help="default: $EDGEWATCH_ASSETS, else <repo>/../shared/assets")
    p.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--frames", type=int, default=300, help="frames per round (default 300)")
    p.add_argument("--block", type=int, default=10, help="frames per block (default 10)")
    p.add_argument("--model", choices=MODELS, default="ssd",
                   help="ssd (default): SSDLite at 768x576; centerface: CenterFace at --size, "
                   "a model several times faster")
    p.add_argument("--size", type=parse_size, default=(256, 192), metavar="WxH",
                   help="--model centerface: its input size (multiples of 32; default 256x192)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. features.every_nth=2 (repeatable)")
    p.add_argument("--evidence", action="store_true",
                   help="evidence capture on in the monitored loop (temporary directory)")
    p.add_argument("--shadow", action="store_true",
                   help="run a model update's shadow (the same SSD as the candidate) during "
                   "the whole benchmark: the live loop's ratio with a shadow active")
    p.add_argument("--pace", choices=("camera", "footage"), default="camera",
                   help="frames' timestamps: camera (default), taken when the loop reads them, "
                   "as from a camera faster than the model; footage, vtest's own 10 fps, as "
                   "recorded footage run faster than real time")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.add_argument("--wait-idle", type=float, default=60.0, metavar="S",
                   help="before each round, wait up to S seconds for an idle machine "
                   "(default 60)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.block < 1 or args.frames < 2 * args.block or args.repeats < 1:
        sys.exit("need --block >= 1, --frames >= 2 x --block and --repeats >= 1")
    assets = assets_dir(args.assets)
    overrides = list(args.set)
    if args.evidence:
        store = tempfile.mkdtemp(prefix="edgewatch-bench-evidence-")
        overrides = ["evidence.enabled=true", f"evidence.path={store}", *overrides]
    workload = Workload.ssd(assets) if args.model == "ssd" \
        else Workload.centerface(assets, args.size)
    cfg = make_config(workload, overrides)
    source = open_source(str(assets / "video/vtest.avi"), first=0, last=399)
    reference = build_reference(cfg, InferenceEngine(cfg.model), source, show_progress=False)
    frames = load_frames(assets / "video/vtest.avi", args.frames)
    loops = PairedLoops(cfg, reference, workload, shadow=args.shadow, pace=args.pace)
    rounds = run_rounds(loops, frames, args)
    counts = loops.close()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    wait_idle(args.wait_idle)
    costs = feature_costs(cfg, reference, frames, args.repeats)
    report(args, workload, rounds, counts, costs, peak_rss, loops.evidence, loops.shadow)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine_facts(), "model": args.model, "settings": args.set,
             "feature_cost_ms": costs,
             "counts": counts, "rounds": [asdict(r) for r in rounds],
             "evidence": loops.evidence, "shadow": loops.shadow,
             "peak_rss_mib": peak_rss}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
