"""CUPED: variance reduction with a pre-exposure covariate (Deng et al., 2013).

The pre-period value of the same metric predicts much of a unit's post-period value but
cannot be affected by the treatment, so subtracting ``theta * pre`` removes variance
without bias. ``theta`` is estimated once from both groups pooled (as gbstats'
``compute_theta``), so it is the same for control and treatment. The relative lift divides
by the *unadjusted* control mean, and its delta-method variance uses the adjusted
variances with the unadjusted means, as gbstats' regression adjustment does.
"""

from __future__ import annotations

import numpy as np

from stats.codes import worst
from stats.lift import Comparison, compare
from stats.sufficient import CovariateStats
from stats.ttest import welch_df


def pooled_theta(control: CovariateStats, treatment: CovariateStats) -> np.ndarray:
    """Regression slope of the metric on its covariate over both groups (0 if undefined)."""
    joint = control + treatment
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = joint.covariance / joint.pre.variance
    ok = np.isfinite(theta) & (joint.pre.variance > 0) & (joint.post.variance > 0)
    return np.where(ok, theta, 0.0)


def adjusted_variance(stats: CovariateStats, theta: np.ndarray) -> np.ndarray:
    """Per-unit variance of ``post - theta * pre``.

    Never negative for possible statistics (Cauchy-Schwarz), so a negative value is
    round-off and clipped to 0; where the covariance is impossible it is NaN (and the
    cell's code is ``INVALID_INPUT``) rather than a silently clipped 0.
    """
    var = stats.post.variance + theta**2 * stats.pre.variance - 2 * theta * stats.covariance
    return np.where(stats.covariance_impossible, np.nan, np.maximum(var, 0.0))


def cuped(
    control: CovariateStats,
    treatment: CovariateStats,
    alpha: float | np.ndarray = 0.05,
    theta: np.ndarray | float | None = None,
) -> Comparison:
    """Two-sided Welch test on CUPED-adjusted means; ``theta`` defaults to the pooled slope.

    With ``theta = 0`` this is exactly :func:`stats.ttest.welch` on the post-period metric.
    """
    if theta is None:
        theta = pooled_theta(control, treatment)
    theta = np.asarray(theta, dtype=float)
    n_c = np.asarray(control.n, dtype=float)
    n_t = np.asarray(treatment.n, dtype=float)
    v_c, v_t = adjusted_variance(control, theta), adjusted_variance(treatment, theta)
    mean_c, mean_t = control.post.mean, treatment.post.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = (mean_t - mean_c) - theta * (treatment.pre.mean - control.pre.mean)
        vm_c, vm_t = v_c / n_c, v_t / n_t
    return compare(
        diff=diff,
        base_c=mean_c,
        base_t=mean_t,
        var_mean_c=vm_c,
        var_mean_t=vm_t,
        df=welch_df(v_c, n_c, v_t, n_t),
        alpha=alpha,
        code=worst(control.codes(), treatment.codes()),
    )
