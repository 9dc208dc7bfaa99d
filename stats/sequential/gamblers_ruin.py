"""A gambler's-ruin stopping rule for conversion counts (Evan Miller's simple sequential test).

With equal allocation and no effect, each new conversion is equally likely to come from
treatment or control, so ``treatment - control`` conversions is a symmetric random walk.
Fix ``total``, the number of conversions at which to stop without a winner (from the
desired power); declare a winner as soon as the walk reaches ``+d`` or ``-d``. The
threshold ``d`` is the smallest one whose ruin probability within ``total`` steps is at
most ``alpha``, computed exactly by the reflection (image) formula rather than the
``2 sqrt(total)`` rule of thumb.

Checking only at some steps (e.g. once per batch of conversions) can only lower the error,
*as long as every check is at or before* ``total`` *conversions*: a winner declared then is
an event of the walk within ``total`` steps, whose probability is at most ``alpha``. A
look past ``total`` is not covered (the walk gets more steps to wander), so it is always
``NO_DIFFERENCE``, whatever the lead: with looks every 20 conversions up to ``total = 400``
and one late look at 700, letting the lead decide there doubled the false-positive rate
to about 0.10.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache

import numpy as np
from scipy import special  # noqa: TID253 - a computation module


class Decision(IntEnum):
    """Where the walk stands."""

    CONTINUE = 0
    TREATMENT_BETTER = 1
    CONTROL_BETTER = 2
    NO_DIFFERENCE = 3  # ``total`` reached without a winner, or any look past ``total``
    INVALID_INPUT = 4  # negative or non-integer counts


def _walk_pmf(steps: int, positions: np.ndarray) -> np.ndarray:
    """P(S_steps = position) for a symmetric simple random walk."""
    k2 = steps + positions
    ok = (k2 % 2 == 0) & (np.abs(positions) <= steps)
    k = np.where(ok, k2 // 2, 0)
    log_pmf = (
        special.gammaln(steps + 1)
        - special.gammaln(k + 1)
        - special.gammaln(steps - k + 1)
        - steps * np.log(2.0)
    )
    return np.where(ok, np.exp(log_pmf), 0.0)


def ruin_probability(steps: int, d: int) -> float:
    """P(the walk reaches +d or -d within ``steps`` steps), by the method of images."""
    if d <= 0:
        return 1.0
    x = np.arange(-d + 1, d)
    reps = np.arange(-(steps // (4 * d)) - 2, steps // (4 * d) + 3)
    shifted = x[:, None] + 4 * d * reps[None, :]
    mirrored = 2 * d - x[:, None] + 4 * d * reps[None, :]
    survive = (_walk_pmf(steps, shifted) - _walk_pmf(steps, mirrored)).sum()
    return float(min(max(1.0 - survive, 0.0), 1.0))


@lru_cache(maxsize=1024)
def threshold(total: int, alpha: float = 0.05) -> int:
    """Smallest lead ``d`` with two-sided ruin probability within ``total`` steps <= ``alpha``."""
    if total < 1:
        raise ValueError("total must be at least 1")
    lo, hi = 1, total + 1  # d = total + 1 can never be reached
    while lo < hi:
        mid = (lo + hi) // 2
        if ruin_probability(total, mid) <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


def gamblers_ruin(
    control_conversions: np.ndarray,
    treatment_conversions: np.ndarray,
    total: int,
    alpha: float = 0.05,
) -> np.ndarray:
    """Decision per comparison (array of :class:`Decision` values) at the current counts."""
    c = np.asarray(control_conversions, dtype=float)
    t = np.asarray(treatment_conversions, dtype=float)
    d = threshold(int(total), float(alpha))
    lead = t - c
    out = np.full(np.broadcast(c, t).shape, Decision.CONTINUE, dtype=np.int8)
    out = np.where(lead <= -d, np.int8(Decision.CONTROL_BETTER), out)
    out = np.where(lead >= d, np.int8(Decision.TREATMENT_BETTER), out)
    # At ``total`` without a winner, and at any look past ``total`` (not covered by alpha).
    out = np.where(t + c > total, np.int8(Decision.NO_DIFFERENCE), out)
    out = np.where((t + c == total) & (np.abs(lead) < d), np.int8(Decision.NO_DIFFERENCE), out)
    bad = (c < 0) | (t < 0) | (c != np.floor(c)) | (t != np.floor(t)) | ~np.isfinite(c + t)
    return np.where(bad, np.int8(Decision.INVALID_INPUT), out).astype(np.int8)
