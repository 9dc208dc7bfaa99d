"""Welch's t-test on sufficient statistics: the platform's default comparison of means.

Unequal variances are the norm between treatment and control, so the test uses Welch's
standard error and Welch-Satterthwaite degrees of freedom, for the p-value and for both
intervals (absolute lift, and relative lift by the delta method), as the contract §3 and
§5 require. Vectorized: pass columnar :class:`SampleStats` for many comparisons at once.
"""

from __future__ import annotations

import numpy as np

from stats.codes import worst
from stats.lift import Comparison, compare
from stats.sufficient import SampleStats


def welch_df(var_c: np.ndarray, n_c: np.ndarray, var_t: np.ndarray, n_t: np.ndarray) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom from per-unit variances and counts."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = np.asarray(var_c, dtype=float) / n_c
        b = np.asarray(var_t, dtype=float) / n_t
        return (a + b) ** 2 / (a**2 / (np.asarray(n_c) - 1) + b**2 / (np.asarray(n_t) - 1))


def welch(
    control: SampleStats, treatment: SampleStats, alpha: float | np.ndarray = 0.05
) -> Comparison:
    """Two-sided Welch t-test of treatment against control.

    Returns lifts, ``1 - alpha`` intervals and p-values; degenerate comparisons (empty or
    single-unit groups, two constant groups, a zero control mean) carry a result code.
    """
    var_c, var_t = control.variance, treatment.variance
    n_c = np.asarray(control.n, dtype=float)
    n_t = np.asarray(treatment.n, dtype=float)
    mean_c, mean_t = control.mean, treatment.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        vm_c, vm_t = var_c / n_c, var_t / n_t
    return compare(
        diff=mean_t - mean_c,
        base_c=mean_c,
        base_t=mean_t,
        var_mean_c=vm_c,
        var_mean_t=vm_t,
        df=welch_df(var_c, n_c, var_t, n_t),
        alpha=alpha,
        code=worst(control.codes(), treatment.codes()),
    )
