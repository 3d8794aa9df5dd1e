"""Pure, mergeable statistics shared by the agent and the collector.

Nothing in this package imports from the rest of edgewatch except the exception tree.
"""

from edgewatch.stats.categorical import CategoricalCounts
from edgewatch.stats.histogram import BinnedHistogram, edges_from_values
from edgewatch.stats.moments import Moments
from edgewatch.stats.sketch import LogSketch

__all__ = ["BinnedHistogram", "CategoricalCounts", "LogSketch", "Moments", "edges_from_values"]
