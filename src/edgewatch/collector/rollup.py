"""Exact merges of stored summaries (schema 2), for the store's retention rollups.

Summaries with the same ``reference_id`` share their bins, so they merge exactly, the way
the agent's outbox compaction merges them (``WindowSummary.merge``), without the agent:

- histogram counts, ``missing``, frame counters, quality and label counts add;
- moments (n, mean, m2, min, max) combine exactly (Chan et al.,
  :class:`edgewatch.stats.Moments`), kept at full float64 precision;
- latency sketches merge bucket by bucket (:class:`edgewatch.stats.LogSketch`);
- anomaly counts and score sums add, the score maximum is the maximum;
- the window is the union span, ``windows`` the sum of the parts';
- quality onsets keep the earliest time of each fault;
- resources, outbox state and anomaly threshold are the latest window's;
- the drift verdict is the **worst** of the parts (``drift`` > ``warning`` > ``ok``; among
  equals the latest window's), as the outbox compaction keeps the worse verdict: a rollup
  that contains a drifting window says so;
- ``historical`` only when every part was;
- ``merged_seqs`` lists every original seq the parts stand for (their own ``merged_seqs``,
  or their seq), so gap counting keeps counting them as present; ``loss`` counters add.

>>> from edgewatch.contracts.summary import Frames, Numeric, Window
>>> a = Summary(Window(0, 60), "r", Frames(seen=2), seq=1, features={"x": Numeric(
...     [0, 2, 0], n=2, mean=1.0, m2=2.0, min=0.0, max=2.0)})
>>> b = Summary(Window(60, 120), "r", Frames(seen=1), seq=2, features={"x": Numeric(
...     [0, 0, 1], n=1, mean=4.0, min=4.0, max=4.0)})
>>> m = merge_summaries([a, b], device="", boot_id="rollup:hour:0", seq=1)
>>> m.window, m.frames.seen, m.features["x"].counts, m.features["x"].mean, m.merged_seqs
(Window(start=0.0, end=120.0, windows=2), 3, [0, 2, 1], 2.0, [1, 2])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from edgewatch.contracts.bounds import MAX_MERGED
from edgewatch.contracts.envelope import Loss
from edgewatch.contracts.summary import (
    Anomaly,
    Drift,
    Frames,
    Labels,
    Numeric,
    Sketch,
    Summary,
    Window,
    delta_keys,
    undelta_keys,
)
from edgewatch.contracts.vocabulary import SEVERITY_RANK
from edgewatch.errors import StatsError
from edgewatch.stats import LogSketch, Moments


def covered_seqs(s: Summary) -> list[int]:
    """The original seqs a stored summary stands for: its ``merged_seqs``, or its seq."""
    return list(s.merged_seqs) if s.merged_seqs else [s.seq]


def _numeric(parts: list[Numeric], name: str) -> Numeric:
    counts = [0] * len(parts[0].counts)
    moments = Moments()
    missing = 0
    for p in parts:
        if len(p.counts) != len(counts):
            raise StatsError(f"feature {name!r}: {len(p.counts)} bins against {len(counts)}")
        counts = [a + b for a, b in zip(counts, p.counts)]
        missing += p.missing
        if p.n:
            moments.merge(Moments(p.n, p.mean, p.m2, p.min, p.max))
    if not moments.count:
        return Numeric(counts, missing)
    return Numeric(counts, missing, moments.count, moments.mean, moments.m2, moments.min,
                   moments.max)


def _sketch(parts: list[Sketch], stage: str) -> Sketch:
    out = LogSketch(parts[0].accuracy)
    for p in parts:
        if p.accuracy != out.accuracy:
            raise StatsError(f"latency {stage!r}: sketches of different accuracy")
        one = LogSketch(p.accuracy)
        one.buckets.update(dict(zip(undelta_keys(p.keys), p.counts)))
        one.zero, one.count = p.zero, p.n
        one.max = -math.inf if p.max is None else p.max
        out.merge(one)
    keys = sorted(k for k, c in out.buckets.items() if c)
    return Sketch(out.count, out.zero, None if out.max == -math.inf else out.max,
                  delta_keys(keys), [out.buckets[k] for k in keys], out.accuracy)


def _add_counts(maps: Sequence[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in maps:
        for k, v in m.items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def _worst_drift(parts: Sequence[Summary]) -> Drift | None:
    worst: Drift | None = None
    for p in parts:  # oldest first: among equals, the latest wins
        if p.drift is None:
            continue
        if worst is None or SEVERITY_RANK[p.drift.severity] >= SEVERITY_RANK[worst.severity]:
            worst = p.drift
    return worst


def _loss(parts: Sequence[Summary]) -> Loss | None:
    losses = [p.loss for p in parts if p.loss is not None]
    if not losses:
        return None
    return Loss(compacted=sum(x.compacted for x in losses),
                evicted=_add_counts([x.evicted for x in losses]),
                dropped=_add_counts([x.dropped for x in losses]),
                rejected=_add_counts([x.rejected for x in losses]))


def merge_summaries(parts: Sequence[Summary], *, device: str, boot_id: str,
                    seq: int) -> Summary:
    """One summary standing for ``parts`` (at least one, same ``reference_id``), keyed
    ``(device, boot_id, seq)``; see the module. StatsError when the parts do not merge
    (different references, bins or sketch accuracies)."""
    if not parts:
        raise StatsError("nothing to merge")
    parts = sorted(parts, key=lambda s: (s.window.end, s.window.start, s.seq))
    ref = parts[0].reference_id
    if any(p.reference_id != ref for p in parts):
        raise StatsError("cannot merge summaries counted against different references")
    latest = parts[-1]
    features = {name: _numeric([p.features[name] for p in parts if name in p.features], name)
                for name in sorted({n for p in parts for n in p.features})}
    labels = {}
    for name in sorted({n for p in parts for n in p.labels}):
        mine = [p.labels[name] for p in parts if name in p.labels]
        labels[name] = Labels(_add_counts([x.counts for x in mine]),
                              sum(x.missing for x in mine))
    latency = {stage: _sketch([p.latency[stage] for p in parts if stage in p.latency], stage)
               for stage in sorted({n for p in parts for n in p.latency})}
    onsets: dict[str, float] = {}
    for p in parts:
        for fault, t in p.quality_onsets.items():
            onsets[fault] = min(t, onsets.get(fault, t))
    thresholds = [p.anomaly.threshold for p in parts if p.anomaly.threshold is not None]
    anomaly = Anomaly(frames=sum(p.anomaly.frames for p in parts),
                      scored=sum(p.anomaly.scored for p in parts),
                      threshold=thresholds[-1] if thresholds else None,
                      score_sum=math.fsum(p.anomaly.score_sum for p in parts),
                      score_max=max(p.anomaly.score_max for p in parts))
    frames = Frames(**{f: sum(getattr(p.frames, f) for p in parts)
                       for f in Frames.__struct_fields__})
    seqs = sorted({s for p in parts for s in covered_seqs(p)})
    return Summary(
        window=Window(float(min(p.window.start for p in parts)),
                      float(max(p.window.end for p in parts)),
                      sum(p.window.windows for p in parts)),
        reference_id=ref, frames=frames, device=device, boot_id=boot_id, seq=seq,
        features=features, labels=labels, latency=latency,
        resources=msgspec.structs.replace(latest.resources),
        quality=_add_counts([p.quality for p in parts]), quality_onsets=dict(sorted(
            onsets.items())), anomaly=anomaly, drift=_worst_drift(parts),
        outbox=latest.outbox, historical=all(p.historical for p in parts),
        merged_seqs=seqs if len(seqs) <= MAX_MERGED else None, loss=_loss(parts))
