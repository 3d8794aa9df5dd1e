"""Re-baselining from accepted windows: a new reference built from stored summaries.

The summaries a device sent were counted on its reference's bins, so the new reference is an
exact merge of the accepted windows (:func:`edgewatch.collector.rollup.merge_summaries`):

- each numeric feature keeps the base reference's edges; its counts, ``missing`` and moments
  (count, mean, m2, min, max; ``std`` from them) are the windows' merged exactly;
- label counts add;
- ``frames`` is the windows' monitored frames; ``samples`` per feature the windows' values,
  at most one per monitored frame per window (as the drift judge counts a window's samples);
- **lag-1 autocorrelation and frame interval are the base reference's**: the windows keep no
  frame-to-frame series (their measured frames are a sample, 0.4 s apart by default), and an
  accepted change of gain, exposure or scene leaves the camera's frame-to-frame dynamics as
  they were; estimating it from window means (10 s or more apart) would measure something
  else;
- **no anomaly model**: it needs the frames' joint feature vectors, which summaries do not
  keep; the anomaly score is off with this reference until one is built on the device
  (``edgewatch profile build`` and ``edgewatch reference push``);
- ``excluded`` keeps the base's and adds features with no sample in the windows.

The result is pushed to the device with ``reference.push`` (:func:`push_reference`); the
device checks it, keeps the previous one, and recomputes its id from the content.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

from edgewatch.collector.rollup import merge_summaries
from edgewatch.contracts.digest import sha256
from edgewatch.contracts.reference import (
    Histogram,
    Moments,
    NumericReference,
    Reference,
    pack_reference,
)
from edgewatch.contracts.summary import Labels, Summary
from edgewatch.errors import EdgewatchError, StatsError


class RebaselineError(EdgewatchError):
    """No windows to accept, or they do not fit the base reference."""


def rebaseline(base: Reference, parts: Sequence[Summary], *, created: float,
               source: str = "") -> Reference:
    """The reference the accepted windows ``parts`` (all counted on ``base``) describe; see
    the module. RebaselineError when they cannot be merged onto it."""
    if not parts:
        raise RebaselineError("no windows to accept")
    wrong = {p.reference_id for p in parts} - {base.id}
    if wrong:
        others = ", ".join(sorted(wrong))
        raise RebaselineError(f"windows counted against other references ({others}) "
                              f"than {base.id}")
    try:
        merged = merge_summaries(parts, device="", boot_id="rebaseline", seq=0)
    except StatsError as exc:
        raise RebaselineError(str(exc)) from exc
    numeric: dict[str, NumericReference] = {}
    samples: dict[str, int] = {}
    excluded = dict(base.excluded)
    for name, ref in base.numeric.items():
        f = merged.features.get(name)
        if f is None or len(f.counts) != len(ref.hist.edges) + 1:
            if f is not None:
                raise RebaselineError(f"feature {name!r}: {len(f.counts)} bins, the reference "
                                      f"has {len(ref.hist.edges) + 1}")
            excluded.setdefault(name, "no sample in the accepted windows")
            numeric[name] = ref
            samples[name] = 0
            continue
        std = math.sqrt(f.m2 / f.n) if f.n else 0.0
        numeric[name] = NumericReference(
            Histogram(list(f.counts), list(ref.hist.edges), f.missing),
            Moments(f.n, f.mean, std, f.m2, f.min, f.max), ref.per_frame, ref.lag1_autocorr)
        samples[name] = sum(min(p.frames.monitored, p.features[name].n)
                            for p in parts if name in p.features)
        if not samples[name]:
            excluded.setdefault(name, "no sample in the accepted windows")
    categorical: dict[str, Labels] = {}
    for name in base.categorical:
        lab = merged.labels.get(name, Labels())
        categorical[name] = lab
        samples[name] = sum(min(p.frames.monitored, sum(p.labels[name].counts.values()))
                            for p in parts if name in p.labels)
    return Reference(
        id="", model_sha256=base.model_sha256, model_name=base.model_name,
        adapter=base.adapter, feature_set_version=base.feature_set_version,
        analysis_width=base.analysis_width, frames=merged.frames.monitored,
        source=source[:4000] or f"{len(parts)} accepted windows on reference {base.id}",
        created=created, numeric=numeric, categorical=categorical, anomaly=None,
        frame_interval=base.frame_interval, samples=samples, excluded=excluded)


def push_arguments(raw: bytes, *, context: str = "", by: str = "", note: str = ""
                   ) -> dict[str, Any]:
    """The ``reference.push`` arguments for a reference file's bytes."""
    args: dict[str, Any] = {"reference": pack_reference(raw),
                            "sha256": sha256(raw).hexdigest()}
    if context:
        args["context"] = context
    if by:
        args["by"] = by
    if note:
        args["note"] = note
    return args


def reference_bytes(ref: Reference) -> bytes:
    """A reference as the JSON file ``profile build`` writes (``schema`` first)."""
    return msgspec.json.encode(ref)
