"""Statistics for experiment comparisons, on mergeable sufficient statistics.

Engines produce :class:`SampleStats` (and :class:`RatioStats`, :class:`CovariateStats`)
per (experiment, group, metric, segment); the tests in the submodules run vectorized over
columns of them and return result :class:`Code`\\s instead of raising on degenerate input.

This module stays importable without scipy (the DAG parser imports it): the test
functions are loaded lazily on first attribute access, e.g. ``stats.welch``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from stats.codes import Code
from stats.sufficient import CovariateStats, RatioStats, SampleStats

_LAZY = {
    "welch": "stats.ttest",
    "ztest": "stats.proportions",
    "delta_ratio": "stats.ratio",
    "cuped": "stats.cuped",
    "adjust": "stats.corrections",
    "family_ids": "stats.corrections",
    "Comparison": "stats.lift",
    "posterior": "stats.bayes",
}

__all__ = ["Code", "CovariateStats", "RatioStats", "SampleStats", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stats' has no attribute {name!r}")
