"""Two-proportion z-test for conversion metrics (units with at least one event).

The p-value uses the pooled proportion (the null says both groups convert alike), as
statsmodels' ``proportions_ztest`` does; the intervals use the unpooled (Wald) standard
error, since under the alternative the groups differ. Inputs are :class:`SampleStats` of
0/1 values (``SampleStats.from_counts(n, conversions)``); counts must be whole numbers.

One group at 0% and the other at 100% is a valid, very significant test (pooled
``z = 14.1`` for 0/100 against 100/100, as statsmodels): only a zero *test* standard
error (both groups at 0%, or both at 100%; for ``pooled=False`` each group at 0% or
100%) gives ``ZERO_VARIANCE``. The Wald intervals then have zero width (the known
weakness of the Wald interval at the boundary).
"""

from __future__ import annotations

import numpy as np

from stats.codes import Code, first_match, worst
from stats.lift import Comparison, compare
from stats.sufficient import SampleStats


def _codes(stats: SampleStats) -> np.ndarray:
    n = np.asarray(stats.n, dtype=float)
    k = np.asarray(stats.sum, dtype=float)
    with np.errstate(invalid="ignore"):
        fractional = (k != np.floor(k)) | (n != np.floor(n))
    impossible = (k < 0) | (k > n) | ~np.isfinite(k) | ~np.isfinite(n) | (n < 0) | fractional
    return first_match(
        n.shape,
        [(n < 2, Code.TOO_FEW_UNITS), (n == 0, Code.EMPTY_GROUP), (impossible, Code.INVALID_INPUT)],
    )


def ztest(
    control: SampleStats,
    treatment: SampleStats,
    alpha: float | np.ndarray = 0.05,
    pooled: bool = True,
) -> Comparison:
    """Two-sided two-proportion z-test; ``sum`` is the number of converted units.

    ``pooled=False`` tests with the unpooled standard error too (as spotify-confidence's
    ``ZTest`` does); the default is the textbook pooled test.
    """
    n_c = np.asarray(control.n, dtype=float)
    n_t = np.asarray(treatment.n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_c, p_t = control.sum / n_c, treatment.sum / n_t
        p_pool = (np.asarray(control.sum) + treatment.sum) / (n_c + n_t)
        pooled_se = np.sqrt(p_pool * (1 - p_pool) * (1 / n_c + 1 / n_t))
        vm_c, vm_t = p_c * (1 - p_c) / n_c, p_t * (1 - p_t) / n_t
    code = worst(_codes(control), _codes(treatment))
    # Both groups at 0% or both at 100%: no variation at all, nothing to test. (Without
    # pooling, compare() gives ZERO_VARIANCE where the unpooled standard error is 0.)
    if pooled:
        code = np.where((code == Code.OK) & (pooled_se == 0), np.int8(Code.ZERO_VARIANCE), code)
    return compare(
        diff=p_t - p_c,
        base_c=p_c,
        base_t=p_t,
        var_mean_c=vm_c,
        var_mean_t=vm_t,
        df=np.full(np.shape(p_c), np.inf),
        alpha=alpha,
        code=code,
        test_se=pooled_se if pooled else None,
    )
