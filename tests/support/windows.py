"""Realistic windows without a model: the documented summary example
(tests/data/summary-example.json) varied over a day of 60-s windows, and a reference built
from its histograms (the report tests and bench/report_size.py)."""

from __future__ import annotations

import copy
import json
import math
import random

import msgspec

from edgewatch.contracts import Reference, Summary, SummaryV1, compact
from support.paths import DATA

EXAMPLE = DATA / "summary-example.json"
WINDOWS = 1440


def day_of_windows(windows: int = WINDOWS, seed: int = 0,
                  drift: tuple[int, int] = (800, 1100), start: float | None = None,
                  device: str = "") -> list[Summary]:
    rng = random.Random(seed)
    base = json.loads(EXAMPLE.read_text())
    start = base["window"]["start"] if start is None else start
    out = []
    for i in range(windows):
        line = copy.deepcopy(base)
        line.pop("type")
        line["window"] = {"start": start + 60.0 * i, "end": start + 60.0 * (i + 1), "windows": 1}
        drifting = drift[0] <= i < drift[1]
        for name, f in line["drift"]["features"].items():
            f["effect"] = abs(f["effect"] * rng.uniform(0.5, 1.5))
            if drifting and name == "brightness":
                f.update(effect=0.8 + rng.random(), status="drift", streak=i - drift[0] + 1,
                         drifted=True)
        line["drift"]["severity"] = "drift" if drifting else rng.choice(["ok", "ok", "warning"])
        line["drift"]["detected"] = drifting
        if drifting:
            counts = line["features"]["brightness"]["counts"]
            line["features"]["brightness"]["counts"] = [*counts[3:], 0, 0, 0]
        line["latency"]["inference_ms"]["p50"] *= 1 + 0.2 * math.sin(i / 90)
        line["resources"]["process_cpu_percent"] = 50 + 20 * math.sin(i / 200) + rng.random()
        if i % 97 == 0:
            line["quality"] = {"frozen": rng.randint(1, 30)}
        line["anomaly"]["frames"] = rng.randint(0, 5)
        line["device"] = device
        out.append(compact(msgspec.convert(line, SummaryV1)))
    return out


def reference_of(summary: Summary) -> Reference:
    """A reference with the example's histograms on evenly spaced edges."""
    numeric = {}
    for name, f in summary.features.items():
        bins = len(f.counts) - 1
        numeric[name] = {"hist": {"counts": f.counts, "edges": [float(k) for k in range(bins)]},
                         "moments": {"count": f.n, "mean": f.mean, "m2": f.m2},
                         "per_frame": True, "lag1_autocorr": 0.5}
    return msgspec.convert({"schema": "edgewatch.reference/1", "id": summary.reference_id,
                            "model_sha256": "0" * 64, "model_name": "ssdlite", "adapter": "ssd",
                            "feature_set_version": "1", "analysis_width": 320, "frames": 400,
                            "source": "vtest.avi", "created": 1767225600.0,
                            "numeric": numeric}, Reference)
