"""Sample-ratio mismatch: are the groups as large as their allocations say?

A mismatch means assignment or logging is broken and every other number of the experiment
is suspect, so it is checked before anything else. :func:`chi_square` is the fixed-horizon
check (gbstats' ``check_srm``). A stream looks at the counts continuously, and repeating a
chi-square test at every look would raise false alarms far above alpha; :func:`sequential`
uses the Dirichlet-multinomial mixture likelihood ratio of Lindon & Malek (2022), whose
always-valid p-value may be checked after every record. :func:`stratified` is the same test
when the allocation changed with ramps: one mixture per stretch of constant allocation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special  # noqa: TID253 - a computation module, never imported by DAGs

from stats.codes import Code


@dataclass(frozen=True, eq=False)
class SrmResult:
    """One p-value per check (arrays). :func:`chi_square` gives NaN with ``EMPTY_GROUP`` or
    ``INVALID_INPUT``; :func:`sequential` gives the previous running p-value there."""

    p_value: np.ndarray
    code: np.ndarray


def _prepare(counts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(counts, dtype=float)
    w = np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = w / w.sum(axis=-1, keepdims=True)
    bad = (
        ~np.isfinite(x).all(axis=-1)
        | (x < 0).any(axis=-1)
        | ~np.isfinite(p0).all(axis=-1)
        | (w < 0).any(axis=-1)
        | ((p0 == 0) & (x > 0)).any(axis=-1)
    )
    code = np.where(x.sum(axis=-1) == 0, np.int8(Code.EMPTY_GROUP), np.int8(Code.OK))
    code = np.where(bad, np.int8(Code.INVALID_INPUT), code).astype(np.int8)
    return x, p0, code


def chi_square(counts: np.ndarray, weights: np.ndarray) -> SrmResult:
    """Pearson chi-square goodness of fit of unit counts (last axis: groups) to weights."""
    x, p0, code = _prepare(counts, weights)
    n = x.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = n * p0
        terms = np.where(p0 > 0, (x - expected) ** 2 / expected, 0.0)
    dof = (p0 > 0).sum(axis=-1) - 1
    with np.errstate(invalid="ignore"):
        p = special.chdtrc(np.maximum(dof, 1), terms.sum(axis=-1))
    p = np.where(dof < 1, 1.0, p)
    return SrmResult(np.where(code == Code.OK, p, np.nan), code)


def log_bayes_factor(
    counts: np.ndarray, weights: np.ndarray, concentration: float = 100.0
) -> np.ndarray:
    """Log mixture likelihood ratio of the counts against the allocation.

    Prior under the alternative: Dirichlet with parameters ``concentration * weights``.
    Under the null its exponential is a non-negative martingale with mean one, so by
    Ville's inequality it exceeds ``1/alpha`` with probability at most ``alpha`` ever.
    """
    x, p0, _ = _prepare(counts, weights)
    a = concentration * p0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_m1 = (
            special.gammaln(a.sum(axis=-1))
            - special.gammaln(a.sum(axis=-1) + x.sum(axis=-1))
            + np.where(a > 0, special.gammaln(a + x) - special.gammaln(a), 0.0).sum(axis=-1)
        )
        log_m0 = np.where(x > 0, x * np.log(p0), 0.0).sum(axis=-1)
    return log_m1 - log_m0


def sequential(
    counts: np.ndarray,
    weights: np.ndarray,
    previous_p: np.ndarray | float = 1.0,
    concentration: float = 100.0,
) -> SrmResult:
    """Always-valid SRM p-value: ``min(previous_p, 1 / Bayes factor)``.

    Keep the returned p-value as the stream's state and pass it back at the next look; an
    alarm at ``p <= alpha`` has false-alarm probability at most ``alpha`` however often the
    counts are checked. A look with no counts (``EMPTY_GROUP``) or impossible ones
    (``INVALID_INPUT``) returns ``previous_p`` unchanged with its code; a NaN
    ``previous_p`` counts as 1.
    """
    x, _, code = _prepare(counts, weights)
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.minimum(np.exp(-log_bayes_factor(x, weights, concentration)), 1.0)
    previous = np.broadcast_to(np.asarray(previous_p, dtype=float), code.shape)
    # fmin ignores a NaN on either side: one bad look must not make the state NaN forever.
    return SrmResult(np.where(code == Code.OK, np.fmin(p, previous), previous), code)


def stratified(
    counts: np.ndarray,
    weights: np.ndarray,
    previous_p: float = 1.0,
    concentration: float = 100.0,
) -> float:
    """Always-valid SRM p-value of units whose allocation depends on when they arrived.

    Rows are strata (the stretches between ramps, in which the allocation stays the same),
    columns groups. Under the null each stratum's units are a multinomial sample of its own
    allocation, and a unit's stratum is fixed by its arrival time, not by its group; each
    unit then multiplies its stratum's mixture likelihood ratio by a factor of conditional
    mean one, so the product over strata (the sum of their :func:`log_bayes_factor`) is
    again a test martingale, and ``min(previous_p, 1 / product)`` is always valid. Strata
    with no units add nothing; so do strata whose counts their allocation rules out (units
    in a group it gave 0), which the fixed-horizon check reports instead.
    """
    x, _, code = _prepare(np.atleast_2d(counts), np.atleast_2d(weights))
    if not (code == Code.OK).any():
        return previous_p
    log_bf = np.where(
        code == Code.OK, log_bayes_factor(x, np.atleast_2d(weights), concentration), 0.0
    )
    with np.errstate(over="ignore"):
        p = min(1.0, float(np.exp(-log_bf.sum())))
    return p if previous_p != previous_p else min(p, previous_p)
