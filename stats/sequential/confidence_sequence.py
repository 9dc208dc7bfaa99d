"""The asymptotic confidence sequence gbstats uses (Waudby-Smith et al., 2023, eq. 9).

A large-sample, distribution-free cousin of :mod:`stats.sequential.msprt`: a normal
mixture tuned by the sample size at which the sequence is tightest
(``tuning``, gbstats' ``sequential_tuning_parameter``). Kept so that results match what
GrowthBook users see.

Unlike gbstats, which reports each look's p-value on its own, :func:`asymptotic_cs`
takes the previous look's p-value (``previous_p``) and returns the running minimum, as
:mod:`stats.sequential.msprt` does: the minimum over looks is the always-valid p-value
(rejecting when it is at most alpha is the same as rejecting at the first look whose own
p-value is). With the default ``previous_p = 1`` a single look matches gbstats exactly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from stats.sequential.base import Stats, fixed_horizon
from stats.sequential.result import SequentialResult, decide, running_p


def _rho(alpha: float | np.ndarray, tuning: float) -> np.ndarray:
    alpha = np.asarray(alpha, dtype=float)
    return np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning)


def _half(var: np.ndarray, n: np.ndarray, alpha: float | np.ndarray, rho: np.ndarray) -> np.ndarray:
    s2 = var * n
    nr2 = n * rho**2 + 1
    return np.sqrt(s2) * np.sqrt(2 * nr2 * np.log(np.sqrt(nr2) / alpha) / (n * rho) ** 2)


def asymptotic_cs(
    control: Stats,
    treatment: Stats,
    alpha: float | np.ndarray = 0.05,
    tuning: float = 5000.0,
    previous_p: np.ndarray | float = 1.0,
) -> SequentialResult:
    """Confidence sequences for both lifts and the always-valid p-value of the absolute lift.

    Pass the returned p-value back as ``previous_p`` at the next look; a look with no
    p-value of its own returns ``previous_p`` unchanged (a NaN ``previous_p`` counts as 1).
    """
    base = fixed_horizon(control, treatment, alpha)
    n = np.asarray(control.n, dtype=float) + treatment.n
    rho = _rho(alpha, tuning)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        h = _half(base.se**2, n, alpha, rho)
        h_rel = _half(base.rel_se**2, n, alpha, rho)
        nr2 = n * rho**2 + 1
        st2 = base.lift_abs**2 * n / base.se**2
        e_value = np.exp(rho**2 * st2 / (2 * nr2)) / np.sqrt(nr2)
        p = np.minimum(1 / e_value, 1.0)
    p = running_p(p, previous_p, np.isnan(base.p_value))
    cs = replace(
        base,
        ci_low=base.lift_abs - h,
        ci_high=base.lift_abs + h,
        rel_ci_low=base.lift_rel - h_rel,
        rel_ci_high=base.lift_rel + h_rel,
        p_value=p,
    )
    return decide(cs, alpha)
