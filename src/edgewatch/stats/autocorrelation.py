"""Serial correlation: how many independent observations a correlated series is worth.

Frames of a video are not independent; the drift tests use these sizes instead of the
frame counts (see docs/drift.md).

>>> round(effective_sample_size(100, 0.5), 2)
33.33
>>> round(thinned_autocorr(0.9, 2), 4)                # one frame in 2 measured
0.81
"""

from __future__ import annotations

import math

from edgewatch.errors import StatsError


def effective_sample_size(n: float, lag1_autocorr: float) -> float:
    """Effective number of independent observations in an AR(1)-like series.

    n_eff = n * (1 - r) / (1 + r), with r the lag-1 autocorrelation clipped to [0, 0.99]
    (negative or undefined r gives no correction) and the result clipped to [1, n] (or n
    itself when n < 1). This is the variance-inflation factor of the mean of an AR(1)
    process, used to widen tests on serially correlated windows.

    Reference: D. S. Wilks, "Statistical Methods in the Atmospheric Sciences", 3rd ed.,
    Academic Press, 2011, sect. 5.2.4 (effective sample size under serial correlation).
    """
    size = float(n)
    if not (math.isfinite(size) and size >= 0.0):
        raise StatsError(f"n must be a non-negative finite number, got {n!r}")
    r = float(lag1_autocorr)
    r = min(0.99, max(0.0, r)) if math.isfinite(r) else 0.0
    return min(size, max(1.0, size * (1.0 - r) / (1.0 + r)))


def thinned_autocorr(lag1_autocorr: float, stride: float) -> float:
    """Lag-1 autocorrelation of an AR(1) series observed every ``stride`` steps: r**stride.

    A window that measures one frame in k has samples k frames apart, whose correlation
    is r**k, not r; using r would over-deflate its effective size. A stride below 1 (frames
    closer together than the reference's) gives a larger correlation. Non-positive or
    undefined r, or a stride that is not a positive number, gives r unchanged (clipped as
    in ``effective_sample_size``).
    """
    r = float(lag1_autocorr)
    if not math.isfinite(r) or r <= 0.0:
        return r if math.isfinite(r) else 0.0
    r = min(0.99, r)
    return min(0.99, r ** stride) if math.isfinite(stride) and stride > 0.0 else r
