"""Always-valid inference: the mixture SPRT with a normal mixture (Johari et al., 2017).

The likelihood ratio of "the difference is d" against "it is 0", averaged over
``d ~ N(0, tau**2)``, is a non-negative martingale under the null; by Ville's inequality it
ever exceeds ``1/alpha`` with probability at most ``alpha``. Its inverse, running-minimised,
is a p-value valid at every look and under any stopping rule, and inverting the test
gives a confidence sequence: an interval that covers the true lift at all times at once.
A stream keeps only the running p-value as state.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from stats.sequential.base import Stats, fixed_horizon, unit_variance
from stats.sequential.result import SequentialResult, decide, running_p


def mixture_log_lr(diff: np.ndarray, var: np.ndarray, tau2: np.ndarray) -> np.ndarray:
    """Log of the normal-mixture likelihood ratio for an estimate with variance ``var``."""
    return 0.5 * np.log(var / (var + tau2)) + diff**2 * tau2 / (2 * var * (var + tau2))


def half_width(var: np.ndarray, tau2: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Half-width of the confidence sequence: where the mixture ratio reaches ``1/alpha``."""
    return np.sqrt(
        2 * var * (var + tau2) / tau2 * (np.log(1 / alpha) + 0.5 * np.log((var + tau2) / var))
    )


def msprt(
    control: Stats,
    treatment: Stats,
    alpha: float = 0.05,
    tau: float = 0.1,
    previous_p: np.ndarray | float = 1.0,
) -> SequentialResult:
    """Always-valid test of treatment against control.

    ``tau`` is the mixing standard deviation in units of the metric's pooled standard
    deviation (an effect-size scale: 0.1 tunes power for effects of about a tenth of a
    standard deviation; for a ratio metric, of its delta-method unit values, see
    :func:`stats.sequential.base.unit_variance`). Pass the returned p-value back as ``previous_p`` at the next look;
    a look with no p-value of its own (too few units, zero variance, ...) returns
    ``previous_p`` unchanged, with its code, and a NaN ``previous_p`` counts as 1.
    The relative interval is the absolute one scaled by the delta-method standard errors
    (large-sample).
    """
    base = fixed_horizon(control, treatment, alpha)
    sigma2 = (unit_variance(control) + unit_variance(treatment)) / 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        var = base.se**2
        tau2 = tau**2 * sigma2
        log_lr = mixture_log_lr(base.lift_abs, var, tau2)
        p = np.minimum(np.exp(-log_lr), 1.0)
        h = half_width(var, tau2, alpha)
        scale = h / base.se
    p = running_p(p, previous_p, np.isnan(base.p_value))
    cs = replace(
        base,
        ci_low=base.lift_abs - h,
        ci_high=base.lift_abs + h,
        rel_ci_low=base.lift_rel - scale * base.rel_se,
        rel_ci_high=base.lift_rel + scale * base.rel_se,
        p_value=p,
    )
    return decide(cs, alpha)
