"""Drift, quality and anomaly evaluation on real footage (vtest.avi + SSDLite).

Reference: frames 0-399 (every frame). Windows: 10 s at 10 fps (100 frames), of which the
monitor measures those ``features.max_fps`` lets through (default 2.5 per second: 25 per
window; ``--max-fps 0`` measures all 100). Scenarios:
- no-drift controls: even frames against odd frames; the untouched second half;
- the second half corrupted with ImageNet-C corruptions (severities 1-5);
- a frozen stream and a run of black frames in the second half.
For each, the edgewatch verdict per window is printed next to a naive per-frame KS test
with Bonferroni correction (scipy, i.i.d. p-values), which is what the honest rule replaces.
The default alert rules run on every scenario (the no-signal fast path included): the table
prints the notifications people get per clip (alert messages the collector routes: incident
leads firing or reminding; members are stored, not routed) and, for the frozen and black
clips, the seconds of footage from the fault's onset to its first alert.

    python bench/drift_eval.py [--assets DIR] [--corruptions gaussian_noise,fog]
        [--severities 1,2,3,4,5] [--max-fps 2.5] [--json out.json]

Needs scipy and imagecorruptions-imaug (see docs/drift.md, "Evaluation").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import stats as sps

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.app import make_measurer
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.measure.checks import FrameChecks
from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.measure.sampling import RateCap
from edgewatch.agent.records import Frame
from edgewatch.agent.window.accumulator import WindowAccumulator
from edgewatch.agent.window.drift_judge import DriftJudge
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
from edgewatch.config.agent import AgentConfig, parse_config
from edgewatch.contracts import Alert

FPS = 10.0
WINDOW = 100
SPLIT = 400
CORRUPTIONS = ("gaussian_noise", "brightness", "contrast", "fog", "pixelate", "defocus_blur",
               "jpeg_compression")
NAIVE_ALPHA = 0.01


@dataclass
class Outcome:
    name: str
    severities: list[str]
    naive: list[bool]
    quality: dict[str, int] = field(default_factory=dict)
    onsets: dict[str, float] = field(default_factory=dict)
    anomaly_rates: list[float] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    notifications: int = 0
    """Alert messages routed to people while the clip played (leads firing or reminding)."""
    alerts: list[str] = field(default_factory=list)
    """Every alert message, as rule/subject:state (members marked +)."""
    first_alert: float | None = None
    """Footage time of the first routed firing alert."""


def notifying(alert: Alert) -> bool:
    """An alert message the collector routes to people as a page: an incident lead (not a
    member) firing, or reminding that it still fires."""
    return alert.state == "firing" and not alert.incident


def assets_dir(arg: str | None) -> Path:
    here = Path(__file__).resolve().parents[1]
    for c in (arg, os.environ.get("EDGEWATCH_ASSETS"), here / "assets",
              here.parent / "shared" / "assets"):
        if c and (Path(c) / "video" / "vtest.avi").is_file():
            return Path(c)
    sys.exit("assets not found: pass --assets or set EDGEWATCH_ASSETS")


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


class Runner:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.engine = InferenceEngine(cfg.model)
        self.measurer = make_measurer(cfg)

    def measure(self, images: Iterable[tuple[int, np.ndarray]]) -> list[FrameMeasurement]:
        out = []
        for index, image in images:
            result = self.engine.infer(image)
            out.append(self.measurer(Frame(index, index / FPS, image), result))
        return out

    def reference(self, ms: Sequence[FrameMeasurement]) -> ReferenceProfile:
        b = ReferenceBuilder(self.cfg.reference.bins)
        b.extend(ms)
        return b.build(model_sha256=self.engine.model_sha256, model_name="ssdlite",
                       adapter="ssd", analysis_width=self.cfg.features.analysis_width,
                       source="vtest", created=0.0)


def naive_ks(ref_ms: Sequence[FrameMeasurement], win_ms: Sequence[FrameMeasurement],
             names: list[str]) -> bool:
    """Per-frame two-sample KS on every per-frame feature, Bonferroni across features."""
    pvals = []
    for n in names:
        a = np.array([float(m.numeric[n]) for m in ref_ms])  # type: ignore[arg-type]
        b = np.array([float(m.numeric[n]) for m in win_ms])  # type: ignore[arg-type]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size and b.size and not (np.ptp(a) == 0 and np.ptp(b) == 0 and a[0] == b[0]):
            pvals.append(sps.ks_2samp(a, b).pvalue)
    return bool(pvals) and bool(min(pvals) * len(pvals) < NAIVE_ALPHA)


def evaluate(name: str, cfg: AgentConfig, ref: ReferenceProfile,
             ref_ms: Sequence[FrameMeasurement], ms: list[FrameMeasurement],
             judge_ms: list[float], window: int = WINDOW) -> Outcome:
    judge, checks = DriftJudge(cfg.drift, ref), FrameChecks(cfg.quality, ref)
    names = [n for n, r in ref.numeric.items() if r.per_frame]
    out = Outcome(name, [], [])

    def emit(alert: Alert) -> None:
        member = "+" if alert.incident else ""
        out.alerts.append(f"{member}{alert.rule}/{alert.subject or '-'}:{alert.state}")
        if notifying(alert):
            out.notifications += 1
            if out.first_alert is None:
                out.first_alert = alert.window.end

    engine = AlertEngine(cfg.alerts, AlertStore(":memory:"), emit)
    cap = RateCap(cfg.features.max_fps)  # the monitor's sampling, as in a replay
    for start in range(0, len(ms), window):
        chunk = ms[start:start + window]
        step = chunk[1].timestamp - chunk[0].timestamp if len(chunk) > 1 else 1 / FPS
        acc = WindowAccumulator(ref, chunk[0].timestamp, chunk[0].timestamp + len(chunk) * step)
        kept = [m for m in chunk if cap(m.timestamp)]
        for m in kept:
            m.faults, m.anomaly, m.signal = [], float("nan"), None
            checks(m)
            acc.add(m)
            if m.signal is not None:  # the monitor's no-signal fast path
                engine.signal(m.signal)
        acc.summary.frames.seen = len(chunk)
        acc.summary.frames.sampled_out = len(chunk) - len(kept)
        t0 = time.perf_counter()
        verdict = judge.judge(acc.summary)
        judge_ms.append((time.perf_counter() - t0) * 1e3)
        acc.summary.extra["drift"] = verdict
        engine.evaluate(acc.summary.to_dict())  # the default alert rules, as on a device
        out.severities.append(verdict["severity"])
        out.naive.append(naive_ks(ref_ms, kept, names))
        out.anomaly_rates.append(acc.summary.anomaly.rate)
        for fault, n in acc.summary.quality.items():
            out.quality[fault] = out.quality.get(fault, 0) + n
        for fault, t in acc.summary.quality_onsets.items():
            out.onsets.setdefault(fault, t)
        if verdict["reasons"] and not out.top:
            out.top = verdict["reasons"][:2]
    return out


def corrupt_fn(name: str, severity: int) -> Callable[[np.ndarray], np.ndarray]:
    from imagecorruptions import corrupt

    def apply(bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out = np.asarray(corrupt(rgb, corruption_name=name, severity=severity), np.uint8)
        return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    return apply


def print_table(rows: list[Outcome], first_bad: dict[str, int]) -> None:
    print(f"{'scenario':28} {'edgewatch verdict per window':38} {'naive KS':10} "
          f"{'1st window':10} {'notif.':>6} anomaly% quality")
    for o in rows:
        sev = " ".join({"ok": ".", "warning": "w", "drift": "D"}[s] for s in o.severities)
        naive = "".join("D" if n else "." for n in o.naive)
        i = first_bad.get(o.name)
        first = "-" if i is None else ("drift" if o.severities[i] == "drift" else o.severities[i])
        rate = 100 * statistics.mean(o.anomaly_rates) if o.anomaly_rates else 0.0
        q = ",".join(f"{k}:{v}" for k, v in sorted(o.quality.items()))
        print(f"{o.name:28} {sev:38} {naive:10} {first:10} {o.notifications:>6} "
              f"{rate:7.1f}  {q}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets")
    ap.add_argument("--corruptions", default=",".join(CORRUPTIONS[:4]))
    ap.add_argument("--severities", default="1,2,3,4,5")
    ap.add_argument("--max-fps", type=float, default=None,
                    help="features.max_fps for the windows (default: the config default)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    assets = assets_dir(args.assets)
    cfg = parse_config({"model": {
        "path": str(assets / "models/ssdlite_mobilenet_v2_coco.onnx"),
        "labels": str(assets / "models/coco_labels.txt")}, "window": {"seconds": 10.0},
        "features": {} if args.max_fps is None else {"max_fps": args.max_fps}})
    fps_cap = cfg.features.max_fps
    measured = min(WINDOW, int(fps_cap * WINDOW / FPS)) if fps_cap else WINDOW
    print(f"features.max_fps {fps_cap:g}: up to {measured} of {WINDOW} frames measured per "
          "window")
    runner = Runner(cfg)
    frames = read_frames(assets / "video/vtest.avi")
    all_ms = runner.measure(enumerate(frames))
    first, second = all_ms[:SPLIT], all_ms[SPLIT:]
    ref = runner.reference(first)
    judge_ms: list[float] = []
    rows, first_bad = [], {}
    even = runner.reference(all_ms[0::2])
    rows.append(evaluate("control: even vs odd", cfg, even, all_ms[0::2], all_ms[1::2],
                         judge_ms, window=WINDOW // 2))
    rows.append(evaluate("control: second half", cfg, ref, first, second, judge_ms))
    tail = list(enumerate(frames))[SPLIT:]
    for cname in args.corruptions.split(","):
        for sev in (int(s) for s in args.severities.split(",")):
            fn = corrupt_fn(cname, sev)
            ms = runner.measure((i, fn(f)) for i, f in tail)
            name = f"{cname} s{sev}"
            rows.append(evaluate(name, cfg, ref, first, ms, judge_ms))
            first_bad[name] = 0
            print(f"  done {name}", file=sys.stderr)
    frozen = [(i, tail[50][1] if i >= SPLIT + 50 else f) for i, f in tail]
    rows.append(evaluate("frozen from 45.0 s", cfg, ref, first, runner.measure(frozen),
                         judge_ms))
    black = [(i, np.zeros_like(f) if SPLIT + 50 <= i < SPLIT + 150 else f) for i, f in tail]
    rows.append(evaluate("black 45.0-55.0 s", cfg, ref, first, runner.measure(black),
                         judge_ms))
    print_table(rows, first_bad)
    onset_s = (SPLIT + 50) / FPS
    for o in rows[-2:]:
        onset = {k: round(v - onset_s, 2) for k, v in o.onsets.items()}
        print(f"{o.name}: seconds from fault start to first faulty frame: {onset}")
        to_alert = "no alert" if o.first_alert is None else f"{o.first_alert - onset_s:.1f} s"
        print(f"{o.name}: seconds of footage from fault start to its alert: {to_alert} "
              f"({', '.join(o.alerts)})")
    degraded = [o for o in rows if not o.name.startswith("control")]
    counts = [o.notifications for o in degraded]
    print(f"notifications per degraded clip (default rules): median "
          f"{statistics.median(counts):g}, max {max(counts)} over {len(counts)} clips; "
          f"controls: {[o.notifications for o in rows if o.name.startswith('control')]}")
    for o in degraded:
        print(f"  {o.name}: {', '.join(o.alerts) or 'no alert'}")
    print(f"drift evaluation per window (all features): median "
          f"{statistics.median(judge_ms):.2f} ms, max {max(judge_ms):.2f} ms "
          f"over {len(judge_ms)} windows")
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
