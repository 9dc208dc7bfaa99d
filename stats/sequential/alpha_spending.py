"""Group-sequential tests with Lan-DeMets alpha spending.

A spending function ``a(t)`` says how much of the type-I error may be used by the time a
fraction ``t`` of the planned information (units) has arrived. The boundary at each look
is the z-value whose crossing probability, given no earlier crossing, spends exactly the
increment ``a(t_k) - a(t_{k-1})``. O'Brien-Fleming-type spending keeps early boundaries
very high (little power lost at the end); Pocock-type spends evenly. Boundaries come from
numerical integration of the Brownian motion of the score (Armitage, McPherson and Rowe)
and depend only on the look schedule, so they are computed once per schedule and applied
vectorized to every comparison on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache

import numpy as np
from scipy import optimize, special  # noqa: TID253 - a computation module

from stats.codes import Code
from stats.lift import blank_where
from stats.sequential.base import Stats, fixed_horizon
from stats.sequential.result import SequentialResult, decide

_GRID = 1001  # points of the integration grid (odd, for Simpson's rule)


class Spending(StrEnum):
    """The spending functions on offer."""

    OBRIEN_FLEMING = "obrien_fleming"
    POCOCK = "pocock"
    POWER = "power"


def spent(t: np.ndarray, alpha: float, spending: Spending | str, rho: float = 2.0) -> np.ndarray:
    """Cumulative two-sided alpha spent by information fraction ``t`` (clipped to [0, 1]).

    Each side spends ``alpha / 2`` by its own function, as ldbounds and gsDesign do; for
    O'Brien-Fleming-type spending (not linear in alpha) this is what gives the familiar
    boundaries 4.88, 3.36, 2.68, 2.29, 2.03 for five equal looks at alpha = 0.05.
    """
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    spending = Spending(spending)
    with np.errstate(divide="ignore"):
        if spending is Spending.OBRIEN_FLEMING:
            z = special.ndtri(1 - alpha / 4)
            return 2 * np.where(t > 0, 2 - 2 * special.ndtr(z / np.sqrt(t)), 0.0)
        if spending is Spending.POCOCK:
            return alpha * np.log(1 + (np.e - 1) * t)
        return alpha * t**rho


def _simpson(m: int) -> np.ndarray:
    w = np.ones(m)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w / 3.0


def _exit_prob(c: float, grid: np.ndarray, weights: np.ndarray, sd: float) -> float:
    """Probability of crossing +-c at the next look from the sub-density on ``grid``."""
    return float(weights @ (special.ndtr((-c - grid) / sd) + special.ndtr((grid - c) / sd)))


@lru_cache(maxsize=256)
def _bounds(fractions: tuple[float, ...], alpha: float, spending: str, rho: float) -> np.ndarray:
    t = np.asarray(fractions, dtype=float)
    if t.size == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise ValueError("information fractions must increase strictly within (0, 1]")
    increments = np.diff(np.r_[0.0, spent(t, alpha, spending, rho)])
    bounds = np.empty(t.size)
    w = _simpson(_GRID)
    # Look 1: S(t1) ~ N(0, t1), bound on the z scale directly.
    bounds[0] = special.ndtri(1 - increments[0] / 2) if increments[0] > 0 else np.inf
    c = bounds[0] * np.sqrt(t[0])
    grid = np.linspace(-min(c, 10 * np.sqrt(t[0])), min(c, 10 * np.sqrt(t[0])), _GRID)
    dens = np.exp(-0.5 * grid**2 / t[0]) / np.sqrt(2 * np.pi * t[0])
    for k in range(1, t.size):
        sd = np.sqrt(t[k] - t[k - 1])
        weights = dens * w * (grid[1] - grid[0])

        target = increments[k]
        top = 12 * np.sqrt(t[k])
        if target <= _exit_prob(top, grid, weights, sd):
            bounds[k], c_k = np.inf, top
        else:
            c_k = optimize.brentq(
                lambda c, g=grid, w_=weights, s=sd, tg=target: _exit_prob(c, g, w_, s) - tg,
                1e-9,
                top,
                xtol=1e-10,
            )
            bounds[k] = c_k / np.sqrt(t[k])
        new_grid = np.linspace(-c_k, c_k, _GRID)
        kernel = np.exp(-0.5 * ((new_grid[:, None] - grid[None, :]) / sd) ** 2) / (
            sd * np.sqrt(2 * np.pi)
        )
        dens, grid = kernel @ weights, new_grid
    return bounds


def boundaries(
    fractions: Sequence[float],
    alpha: float = 0.05,
    spending: Spending | str = "obrien_fleming",
    rho: float = 2.0,
) -> np.ndarray:
    """Two-sided z boundaries for looks at the given information fractions (increasing).

    ``rho`` is the exponent of the power family ``alpha * t**rho`` (Kim-DeMets), the
    family spotify-confidence uses with ``rho = 2``.
    """
    fr = tuple(float(f) for f in fractions)
    return _bounds(fr, float(alpha), Spending(spending).value, float(rho)).copy()


def nominal_alphas(bounds: np.ndarray) -> np.ndarray:
    """Two-sided nominal p-value thresholds equivalent to z boundaries."""
    return 2 * special.ndtr(-np.asarray(bounds, dtype=float))


def group_sequential(
    control: Stats,
    treatment: Stats,
    look: np.ndarray | int,
    fractions: Sequence[float],
    alpha: float = 0.05,
    spending: Spending | str = "obrien_fleming",
    rho: float = 2.0,
) -> SequentialResult:
    """The fixed-horizon comparison judged at the spending boundary of look ``look`` (1-based).

    ``fractions`` is the planned schedule (information fraction at each look) shared by
    the comparisons; intervals are repeated confidence intervals at the look's nominal
    level. Looks past the schedule get ``PAST_LAST_LOOK``, look numbers below 1
    ``INVALID_INPUT``.
    """
    levels = nominal_alphas(boundaries(fractions, alpha, spending, rho))
    look = np.asarray(look)
    level = levels[np.clip(look, 1, len(levels)) - 1]
    result = fixed_horizon(control, treatment, level)
    result = blank_where(result, look > len(levels), Code.PAST_LAST_LOOK)
    return decide(blank_where(result, look < 1, Code.INVALID_INPUT), level)
