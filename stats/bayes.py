"""Bayesian A/B summaries: chance to beat control, expected loss, credible interval.

People ask "how likely is treatment better, and what do I lose if I ship it and it is
not?"; these answer that directly. The model is gbstats' effect model: a normal
likelihood for the lift (absolute, or relative by the delta method) with a flat prior, or
a proper normal prior on the effect. It takes any :class:`~stats.lift.Comparison`, so it
works for means, proportions, ratios and CUPED alike. It is a decision aid, not a
false-positive guarantee under peeking (see docs/statistics.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special  # noqa: TID253 - a computation module, never imported by DAGs

from stats.codes import Code
from stats.lift import Comparison


@dataclass(frozen=True)
class GaussianPrior:
    """Normal prior on the effect (on the scale analysed); ``variance=inf`` is flat."""

    mean: float = 0.0
    variance: float = float("inf")


@dataclass(frozen=True, eq=False)
class BayesResult:
    """Posterior summaries per comparison (arrays).

    ``risk_control`` is the expected loss of keeping control (``E[max(effect, 0)]``),
    ``risk_treatment`` that of shipping treatment (``E[max(-effect, 0)]``). NaN only with a
    non-OK ``code``.
    """

    chance_to_win: np.ndarray
    expected: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    risk_control: np.ndarray
    risk_treatment: np.ndarray
    code: np.ndarray


def posterior(
    comparison: Comparison,
    relative: bool = True,
    alpha: float = 0.05,
    prior: GaussianPrior = GaussianPrior(),
) -> BayesResult:
    """Normal posterior of the (relative or absolute) lift of each comparison."""
    data_mean = comparison.lift_rel if relative else comparison.lift_abs
    data_sd = comparison.rel_se if relative else comparison.se
    with np.errstate(divide="ignore", invalid="ignore"):
        data_prec = 1.0 / data_sd**2
        prior_prec = 0.0 if np.isinf(prior.variance) else 1.0 / prior.variance
        post_prec = data_prec + prior_prec
        mu = (data_mean * data_prec + prior.mean * prior_prec) / post_prec
        sd = np.sqrt(1.0 / post_prec)
        z = mu / sd
        pdf = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
        ctw = special.ndtr(z)
        risk_control = mu * special.ndtr(z) + sd * pdf
        risk_treatment = sd * pdf - mu * special.ndtr(-z)
        half = special.ndtri(1 - alpha / 2) * sd
    code = np.asarray(comparison.code, dtype=np.int8)
    ok = np.isfinite(mu) & np.isfinite(sd) & (sd > 0)
    code = np.where(~ok & (code == Code.OK), np.int8(Code.INVALID_INPUT), code)

    def keep(values: np.ndarray) -> np.ndarray:
        return np.where(ok, values, np.nan)

    return BayesResult(
        chance_to_win=keep(ctw),
        expected=keep(mu),
        ci_low=keep(mu - half),
        ci_high=keep(mu + half),
        risk_control=keep(risk_control),
        risk_treatment=keep(risk_treatment),
        code=code.astype(np.int8),
    )
