"""The seed's sequential rule: a Welch t-test at ``alpha / K`` for ``K`` planned looks.

Simple and conservative: by the union bound, ``K`` looks at level ``alpha / K`` each keep
the chance of any false rejection at most ``alpha``, whatever the correlation between
looks. The price is power; :mod:`stats.sequential.alpha_spending` spends alpha more
cleverly. A look beyond the ``K`` planned ones has no guarantee and gets ``PAST_LAST_LOOK``;
a look number below 1 is ``INVALID_INPUT``.
"""

from __future__ import annotations

import numpy as np

from stats.codes import Code
from stats.lift import blank_where
from stats.sequential.base import Stats, fixed_horizon
from stats.sequential.result import SequentialResult, decide


def bonferroni_over_looks(
    control: Stats,
    treatment: Stats,
    look: np.ndarray | int,
    max_looks: int,
    alpha: float = 0.05,
) -> SequentialResult:
    """The fixed-horizon test (Welch; the delta method for ratios) and its intervals at level
    ``alpha / max_looks``, at look ``look`` (1-based)."""
    if max_looks < 1:
        raise ValueError("max_looks must be at least 1")
    level = alpha / max_looks
    result = fixed_horizon(control, treatment, level)
    look = np.asarray(look)
    result = blank_where(result, look > max_looks, Code.PAST_LAST_LOOK)
    result = blank_where(result, look < 1, Code.INVALID_INPUT)
    return decide(result, level)
