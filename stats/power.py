"""Power, minimum detectable effect and sample size of a two-group comparison of means.

The test is two-sided at level ``alpha``; treatment has ``ratio`` times control's units.
With the per-unit standard deviation ``sigma`` (the same in both groups) the standard error
of the difference is ``sigma * sqrt(1/n_c + 1/n_t)``, and for a true difference ``delta``

- ``test="z"`` (large samples, what the results' Welch test becomes): power is
  ``Phi(delta/se - z) + Phi(-delta/se - z)`` with ``z = Phi^-1(1 - alpha/2)``;
- ``test="t"``: the same with Student's t on ``n_c + n_t - 2`` degrees of freedom and the
  non-central t under the alternative.

These are the formulas of statsmodels' ``NormalIndPower`` and ``TTestIndPower`` (both tails
counted); the tests check the numbers against them. :func:`mde` and :func:`sample_size`
invert :func:`power` by root finding to 1e-12 relative, so the inverse is as exact as the
forward formula. Everything is scalar: power analysis is a handful of numbers per call.
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import optimize, special  # noqa: TID253 - a computation module, never imported by DAGs

Test = Literal["z", "t"]
TESTS: tuple[Test, ...] = ("z", "t")
DEFAULT_POWER = 0.8


def _check(alpha: float, power_: float | None = None) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if power_ is not None and not alpha < power_ < 1:
        raise ValueError(f"power must be in (alpha, 1), got {power_}")


def power(
    delta: float, sigma: float, n_control: float, ratio: float = 1.0, alpha: float = 0.05,
    test: Test = "z",
) -> float:  # fmt: skip
    """The chance that the test rejects when the true difference of means is ``delta``."""
    _check(alpha)
    if sigma <= 0 or n_control <= 0 or ratio <= 0:
        raise ValueError("sigma, n_control and ratio must be positive")
    n_t = n_control * ratio
    nc = abs(delta) / (sigma * math.sqrt(1.0 / n_control + 1.0 / n_t))
    if test == "z":
        crit = special.ndtri(1.0 - alpha / 2.0)
        return float(special.ndtr(nc - crit) + special.ndtr(-nc - crit))
    df = n_control + n_t - 2.0
    if df <= 0:
        raise ValueError("a t-test needs more than two units in all")
    crit = special.stdtrit(df, 1.0 - alpha / 2.0)
    # P(T > crit) + P(T < -crit) for T ~ non-central t(df, nc). scipy's nctdtr returns NaN
    # instead of a value that underflows, which happens only far in a tail (nc > crit).
    below, far_below = special.nctdtr(df, nc, crit), special.nctdtr(df, nc, -crit)
    if nc > crit:
        below, far_below = (0.0 if math.isnan(x) else x for x in (below, far_below))
    return float(1.0 - below + far_below)


def mde(
    sigma: float, n_control: float, ratio: float = 1.0, alpha: float = 0.05,
    power_: float = DEFAULT_POWER, test: Test = "z",
) -> float:  # fmt: skip
    """The smallest true difference of means (absolute, > 0) detected with chance ``power_``."""
    _check(alpha, power_)
    if sigma <= 0 or n_control <= 0 or ratio <= 0:
        raise ValueError("sigma, n_control and ratio must be positive")
    se = sigma * math.sqrt(1.0 / n_control + 1.0 / (n_control * ratio))

    def gap(delta: float) -> float:
        return power(delta, sigma, n_control, ratio, alpha, test) - power_

    high = se
    while gap(high) < 0:
        high *= 2.0
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-300, rtol=1e-13, maxiter=500))


def sample_size(
    delta: float, sigma: float, ratio: float = 1.0, alpha: float = 0.05,
    power_: float = DEFAULT_POWER, test: Test = "z",
) -> float:  # fmt: skip
    """Control's units (a real number: round up) for chance ``power_`` of detecting ``delta``.

    Treatment needs ``ratio`` times as many.
    """
    _check(alpha, power_)
    if delta == 0 or sigma <= 0 or ratio <= 0:
        raise ValueError("delta must be non-zero, sigma and ratio positive")
    low = 3.0 / (1.0 + ratio) if test == "t" else 1e-9  # the t-test: at least one df

    def gap(n: float) -> float:
        return power(delta, sigma, n, ratio, alpha, test) - power_

    high = max(2.0 * low, 2.0)
    while gap(high) < 0:
        high *= 2.0
    if gap(low) >= 0:
        return low
    return float(optimize.brentq(gap, low, high, xtol=1e-12, rtol=1e-13, maxiter=500))
