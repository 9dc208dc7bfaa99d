"""What every sequential test starts from: the fixed-horizon comparison of the metric's kind.

A sequential method only changes the level a comparison is judged at (boundary methods) or
how its estimate and standard error become a p-value and an interval (mixture methods).
So each method takes the same statistics the fixed-horizon tests do: :class:`SampleStats`
for means (Welch's test) and :class:`RatioStats` for ratio metrics (the delta method).
"""

from __future__ import annotations

import numpy as np

from stats.lift import Comparison
from stats.ratio import delta_ratio, ratio_variance
from stats.sufficient import RatioStats, SampleStats
from stats.ttest import welch

Stats = SampleStats | RatioStats


def fixed_horizon(control: Stats, treatment: Stats, alpha: float | np.ndarray) -> Comparison:
    """Welch's test for means, the delta method for ratios (both groups of one kind)."""
    if isinstance(control, RatioStats) and isinstance(treatment, RatioStats):
        return delta_ratio(control, treatment, alpha=alpha)
    if isinstance(control, SampleStats) and isinstance(treatment, SampleStats):
        return welch(control, treatment, alpha=alpha)
    raise TypeError("control and treatment must both be SampleStats or both RatioStats")


def unit_variance(stats: Stats) -> np.ndarray:
    """Variance of one unit's value: the sample variance, or a ratio's delta-method bracket."""
    if isinstance(stats, RatioStats):
        return ratio_variance(stats)[1]
    return np.asarray(stats.variance)
