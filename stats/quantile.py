"""Quantile metrics: a group's quantile, its interval, and the comparison of two groups.

A group's estimate of the ``level`` quantile of ``n`` values ``x_(1) <= ... <= x_(n)`` is
numpy's default (linear interpolation, Hyndman & Fan type 7): with ``h = (n - 1) level``,
``x_(floor h + 1) + (h - floor h) (x_(floor h + 2) - x_(floor h + 1))``.

Its ``1 - alpha`` interval is distribution-free, from order statistics: the normal-form
binomial interval of the quantile's rank, ``level -+ z s`` with
``s = sqrt(level (1 - level) / n)`` and ``z = Phi^-1(1 - alpha/2)``, carried to the values
as the type-7 quantiles at those two levels (clipped to [0, 1]): :func:`ci_levels`. This is
the "outer" interval of Deng, Knoblich & Lu, "Applying the Delta Method in Metric
Analytics" (KDD 2018), which GrowthBook and Eppo use for quantile metrics; interpolating
between order statistics instead of rounding the ranks outwards keeps the coverage at
nominal (the rounded version over-covers the p90 by 1-2 points at n = 200-1000, measured
by the same Monte Carlo). Its half-width gives the estimate's standard error,
``se = (x_(hi) - x_(lo)) / (2 z)``, and two independent groups compare as any two
estimates do (:func:`stats.lift.compare`, a z-test): the difference ``q_t - q_c`` with
variance ``se_t^2 + se_c^2``, the relative difference ``q_t / q_c - 1`` by the delta
method. The Monte Carlo in ``tests/unit/stats/test_quantile.py`` measures the coverage
(docs/statistics.md "Quantile metrics").

The Spark code computes the same order statistics in SQL (:mod:`metric_types.quantiles`); the
functions here are the definition, vectorized over groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special  # noqa: TID253 - a computation module, never imported by DAGs

from stats.codes import Code, first_match, worst
from stats.lift import Comparison, compare


def z_of(alpha: float | np.ndarray) -> np.ndarray:
    return np.asarray(special.ndtri(1.0 - np.asarray(alpha, dtype=float) / 2.0))


def ci_levels(
    n: np.ndarray | float, level: float, alpha: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The levels ``(low, high)`` whose type-7 quantiles bound the interval."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = z_of(alpha) * np.sqrt(level * (1.0 - level) / n)
    return np.clip(level - half, 0.0, 1.0), np.clip(level + half, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class QuantileStats:
    """Per group: units ``n``, the quantile estimate and its interval's bounds (arrays)."""

    n: np.ndarray
    quantile: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, level: float, alpha: float) -> QuantileStats:
        """From raw values, one group per row of a 2-D array (all rows of equal length)."""
        x = np.atleast_2d(np.asarray(values, dtype=float))
        n = x.shape[-1]
        low, high = ci_levels(n, level, alpha)
        q = np.quantile(x, [float(low), level, float(high)], axis=-1)
        return cls(np.full(x.shape[0], float(n)), q[1], q[0], q[2])


def quantile_test(
    control: QuantileStats, treatment: QuantileStats, alpha: float | np.ndarray = 0.05
) -> Comparison:
    """Two-sided z-test of the quantile difference, with absolute and relative intervals.

    ``alpha`` must be the level the groups' intervals were computed at.
    """
    z = z_of(alpha)
    se_c = (np.asarray(control.high, dtype=float) - control.low) / (2.0 * z)
    se_t = (np.asarray(treatment.high, dtype=float) - treatment.low) / (2.0 * z)
    n_c, n_t = np.asarray(control.n, dtype=float), np.asarray(treatment.n, dtype=float)

    def codes(n: np.ndarray) -> np.ndarray:
        return first_match(n.shape, [(n < 2, Code.TOO_FEW_UNITS), (n == 0, Code.EMPTY_GROUP)])

    q_c, q_t = (
        np.asarray(control.quantile, dtype=float),
        np.asarray(treatment.quantile, dtype=float),
    )
    return compare(
        diff=q_t - q_c, base_c=q_c, base_t=q_t, var_mean_c=se_c**2, var_mean_t=se_t**2,
        df=np.full(q_c.shape, np.inf), alpha=alpha, code=worst(codes(n_c), codes(n_t)),
    )  # fmt: skip
