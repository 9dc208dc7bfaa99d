"""Ratio metrics (clicks per impression, revenue per session) by the delta method.

A ratio of two per-unit sums is not a mean of independent values: numerator and
denominator of one unit are correlated. The delta method turns the unit-level variances
and covariance into the variance of the ratio estimate, after which the comparison is a
Welch test like any other (gbstats' ``RatioStatistic`` does the same).
"""

from __future__ import annotations

import numpy as np

from stats.codes import Code, worst
from stats.lift import Comparison, compare
from stats.sufficient import RatioStats
from stats.ttest import welch_df


def ratio_variance(stats: RatioStats) -> tuple[np.ndarray, np.ndarray]:
    """The ratio ``num_sum / den_sum`` and the delta-method variance of one unit's share.

    ``var(R) ~ (var_m / mu_d**2 - 2 cov mu_m / mu_d**3 + mu_m**2 var_d / mu_d**4) / n``;
    the second value returned is the bracket (divide by ``n`` for the estimate's variance).
    The bracket is the variance of ``m/mu_d - mu_m d/mu_d**2``, never negative for possible
    statistics: a negative value is round-off, clipped to 0, and an impossible covariance
    (Cauchy-Schwarz) gives NaN.
    """
    num, den = stats.numerator, stats.denominator
    mu_m, mu_d = num.mean, den.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(stats.num_sum, dtype=float) / stats.den_sum
        unit_var = (
            num.variance / mu_d**2
            - 2 * stats.covariance * mu_m / mu_d**3
            + mu_m**2 * den.variance / mu_d**4
        )
    return ratio, np.where(stats.covariance_impossible, np.nan, np.maximum(unit_var, 0.0))


def delta_ratio(
    control: RatioStats, treatment: RatioStats, alpha: float | np.ndarray = 0.05
) -> Comparison:
    """Two-sided test of the difference of two ratio metrics (Welch df on the delta variance)."""
    r_c, v_c = ratio_variance(control)
    r_t, v_t = ratio_variance(treatment)
    n_c = np.asarray(control.n, dtype=float)
    n_t = np.asarray(treatment.n, dtype=float)
    code = worst(control.codes(), treatment.codes())
    zero_den = (np.asarray(control.den_sum) == 0) | (np.asarray(treatment.den_sum) == 0)
    code = np.where((code == Code.OK) & zero_den, np.int8(Code.ZERO_DENOMINATOR), code)
    with np.errstate(divide="ignore", invalid="ignore"):
        vm_c, vm_t = v_c / n_c, v_t / n_t
    return compare(
        diff=r_t - r_c,
        base_c=r_c,
        base_t=r_t,
        var_mean_c=vm_c,
        var_mean_t=vm_t,
        df=welch_df(v_c, n_c, v_t, n_t),
        alpha=alpha,
        code=code,
    )
