"""A label-free estimate of how well the model does, from what summaries already carry.

No labels reach the collector, so accuracy cannot be measured; it can be *estimated* under
assumptions about the shift. The estimate here is average thresholded confidence (ATC,
Garg et al., "Leveraging unlabeled data to predict out-of-distribution performance", ICLR
2022), on the histograms of the model's confidence that every window carries in the
reference's bins:

1. **The threshold is fixed on the reference.** The reference footage is assumed to be
   handled with accuracy ``A`` (``advisory.assumed_accuracy``: what the model scored when it
   was validated for this camera). The threshold ``t`` is the bin edge of the confidence
   feature at which the share of reference frames with confidence ``>= t`` is closest to
   ``A`` (bins are the reference's quantiles, so ``t`` is within one bin of the exact ATC
   threshold; ``reference_share`` is the share at ``t``, exact on the histogram).
2. **The estimate on windows** is the share of their frames with confidence ``>= t``,
   relative to the reference's: ``ratio = share / reference_share``, and
   ``estimate = min(1, A * ratio)``.

Confidence is ``score_max`` for detectors (the best candidate's score in the frame, 0 when
there is none) and ``top1_prob`` for classifiers. Two companions travel with it:
near-threshold candidates per frame (detectors: decisions close to the operating threshold
are the uncertain ones), windows over reference; and the Jensen-Shannon distance of the
class mix from the reference's.

Everything is a function of bin counts, moment sums and label counts, so windows merge
exactly before estimating: the estimate over several windows is the estimate over their
merged histogram (:class:`ConfidenceTally` adds).

What it cannot tell (docs/advisory.md): ATC assumes covariate shift with calibrated scores
-- images change, the model's confidence falls where it gets things wrong. It cannot see
label shift (the world's mix of classes changes while each image looks the same), nor
confident errors (a new kind of object detected as a person with 0.9). A ratio near 1 is no
proof that all is well; a falling ratio is evidence that the model is less sure.

>>> import numpy as np
>>> edges = [0.2, 0.4, 0.6, 0.8]                  # bins: <0.2, [0.2,0.4), ..., >=0.8
>>> reference = [0, 5, 5, 10, 80]                 # 90 % of frames at or above 0.6
>>> atc_threshold(edges, reference, 0.9)
(2, 0.9)
>>> window = ConfidenceTally(np.array([10, 20, 20, 20, 30]))
>>> round(window.share_at(2), 3)                  # half the window is that confident
0.5
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from edgewatch.contracts.advisory import Estimate
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.summary import Summary
from edgewatch.errors import StatsError
from edgewatch.stats.distances import js_distance
from edgewatch.stats.histogram import BinnedHistogram

CONFIDENCE_FEATURES = ("score_max", "top1_prob")
"""The confidence feature, in order of preference: detectors, then classifiers."""
NEAR_FEATURE = "near_threshold"
CLASS_LABELS = "classes"


def atc_threshold(edges: Sequence[float], counts: Sequence[int],
                  accuracy: float) -> tuple[int, float]:
    """(k, share): the edge index ``k`` at which the share of reference values
    ``>= edges[k]`` is closest to ``accuracy`` (the higher edge on a tie), and that share.
    ``counts`` are the reference's bins (``len(edges) + 1``: underflow first); values equal
    to an edge count in the bin above it. StatsError when the reference has no value."""
    c = np.asarray(counts, dtype=np.float64)
    if c.size != len(edges) + 1 or len(edges) < 1:
        raise StatsError(f"expected {len(edges) + 1} counts for {len(edges)} edges")
    total = c.sum()
    if total <= 0:
        raise StatsError("the reference has no value of the confidence feature")
    above = np.cumsum(c[::-1])[::-1]  # above[i] = sum(c[i:])
    shares = above[1:] / total         # shares[k] = share of values >= edges[k]
    gaps = np.abs(shares - accuracy)
    k = int(np.flatnonzero(gaps <= gaps.min() + 1e-12)[-1])
    return k, float(shares[k])


@dataclasses.dataclass
class ConfidenceTally:
    """What the estimate needs from windows, added up exactly: the confidence feature's bin
    counts, the near-threshold candidates (sum, frames) and the class counts."""

    counts: np.ndarray
    near_sum: float = 0.0
    near_frames: int = 0
    classes: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.counts.sum())

    def share_at(self, k: int) -> float:
        """Share of the values ``>= edges[k]`` (NaN without values)."""
        total = self.counts.sum()
        return float(self.counts[k + 1:].sum() / total) if total else math.nan

    def merge(self, other: ConfidenceTally) -> ConfidenceTally:
        classes = dict(self.classes)
        for label, n in other.classes.items():
            classes[label] = classes.get(label, 0) + n
        return ConfidenceTally(self.counts + other.counts, self.near_sum + other.near_sum,
                               self.near_frames + other.near_frames, classes)


def confidence_feature(reference: Reference) -> str | None:
    """The reference's confidence feature (None: no detector or classifier scores)."""
    for name in CONFIDENCE_FEATURES:
        numeric = reference.numeric.get(name)
        if numeric is not None and sum(numeric.hist.counts) > 0:
            return name
    return None


def tally(summary: Summary, feature: str, bins: int) -> ConfidenceTally | None:
    """One window's tally (None when it does not carry the feature in ``bins`` bins)."""
    numeric = summary.features.get(feature)
    if numeric is None or len(numeric.counts) != bins:
        return None
    near = summary.features.get(NEAR_FEATURE)
    labels = summary.labels.get(CLASS_LABELS)
    return ConfidenceTally(
        np.asarray(numeric.counts, dtype=np.int64),
        near_sum=0.0 if near is None else near.mean * near.n,
        near_frames=0 if near is None else near.n,
        classes={} if labels is None else dict(labels.counts))


def class_js(reference: Mapping[str, int], window: Mapping[str, int]) -> float | None:
    """Jensen-Shannon distance (base 2) between two label mixes; None when either is
    empty."""
    labels = sorted(set(reference) | set(window))
    ref = np.array([reference.get(k, 0) for k in labels], dtype=np.int64)
    win = np.array([window.get(k, 0) for k in labels], dtype=np.int64)
    if ref.sum() <= 0 or win.sum() <= 0:
        return None
    if len(labels) == 1:
        return 0.0
    edges = np.arange(len(labels) - 1) + 0.5
    return js_distance(BinnedHistogram(edges, ref), BinnedHistogram(edges, win))


def estimate(reference: Reference, summaries: Iterable[Summary],
             accuracy: float) -> Estimate | None:
    """The ATC estimate of ``summaries`` (windows counted against ``reference``), merged;
    None when the reference has no confidence feature or the windows no value of it."""
    if not 0.0 < accuracy <= 1.0:
        raise StatsError(f"assumed accuracy must be in (0, 1], got {accuracy!r}")
    feature = confidence_feature(reference)
    if feature is None:
        return None
    ref = reference.numeric[feature]
    edges, ref_counts = ref.hist.edges, ref.hist.counts
    total: ConfidenceTally | None = None
    for summary in summaries:
        if summary.reference_id != reference.id:
            continue
        one = tally(summary, feature, len(ref_counts))
        if one is not None:
            total = one if total is None else total.merge(one)
    if total is None or total.frames == 0:
        return None
    k, ref_share = atc_threshold(edges, ref_counts, accuracy)
    share = total.share_at(k)
    ratio = share / ref_share if ref_share > 0 else 1.0
    near_ratio = None
    near_ref = reference.numeric.get(NEAR_FEATURE)
    if near_ref is not None and total.near_frames and near_ref.moments.mean > 0:
        near_ratio = (total.near_sum / total.near_frames) / near_ref.moments.mean
    ref_classes = reference.categorical.get(CLASS_LABELS)
    js = None if ref_classes is None else class_js(ref_classes.counts, total.classes)
    return Estimate(
        feature=feature, threshold=float(edges[k]), reference_share=ref_share, share=share,
        ratio=ratio, estimate=min(1.0, accuracy * ratio), frames=total.frames,
        near_threshold_ratio=near_ratio, class_js=js)
