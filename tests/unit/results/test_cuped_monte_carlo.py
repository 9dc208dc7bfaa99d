"""CUPED through the pipeline's own comparison step, on many simulated A/A experiments.

Users have a persistent propensity ``w`` (the generator's kind of user: an activity rate that
lasts), so their pre-exposure count ``Poisson(a w)`` predicts their post-exposure count
``Poisson(b w)``; treatment changes nothing. Each repetition becomes the two result rows
``metric_types.compute`` would write (``n``, ``sum``, ``sum_sq`` and the covariate's
``pre_sum``, ``pre_sum_sq``, ``pre_sum_xy``) and goes through
``results.comparisons.compare_groups`` with ``analysis: {cuped: ...}``, exactly as a batch.

- False positives: over R repetitions the share of ``cuped_p_value <= alpha`` must lie
  within the central 99.9% of Binomial(R, alpha) / R.
- The predicted narrowing (docs/statistics.md): with exponential propensity (E w = Var w = 1)
  and a = b = 3, ``Var(x) = 3 + 9``, ``Cov(x, pre) = 9``, so ``rho = 0.75`` and the interval's
  width should shrink by ``sqrt(1 - rho**2) = 0.6614``; the mean width ratio over the
  repetitions must be within 1% of it (its Monte Carlo standard error is about 0.05%).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from results.comparisons import compare_groups
from results.schema import ResultRow
from tests.support.result_rows import make_row

pytestmark = pytest.mark.slow

REPETITIONS = 4000
USERS = 500  # per group
ALPHA = 0.05
ANALYSIS = {"exp": {"cuped": {"pre_days": 7}, "alpha": ALPHA}}


def _rows(propensity: np.ndarray, rng: np.random.Generator, a: float, b: float) -> list[ResultRow]:
    """Control and treatment rows of each repetition (one period per repetition)."""
    pre = rng.poisson(a * propensity).astype(float)
    post = rng.poisson(b * propensity).astype(float)
    sums = {
        "sum": post.sum(axis=-1), "sum_sq": (post * post).sum(axis=-1),
        "pre_sum": pre.sum(axis=-1), "pre_sum_sq": (pre * pre).sum(axis=-1),
        "pre_sum_xy": (pre * post).sum(axis=-1),
    }  # fmt: skip
    rows = []
    for r in range(propensity.shape[0]):
        for g, group in enumerate(("control", "treatment")):
            rows.append(make_row(
                group=group, period_start=r, n=USERS, exposed=USERS, look=1,
                **{name: float(values[r, g]) for name, values in sums.items()},
            ))  # fmt: skip
    return rows


def _treated(propensity: np.ndarray, seed: int, a: float = 3.0, b: float = 3.0) -> list[ResultRow]:
    rows = _rows(propensity, np.random.default_rng(seed), a, b)
    out = compare_groups(rows, frozenset({("exp", "control")}), ANALYSIS)
    treated = [r for r in out if r.group == "treatment"]
    assert len(treated) == REPETITIONS and all(r.status == "" for r in treated)
    return treated


def _false_positive_bounds() -> tuple[float, float]:
    low, high = binom.ppf([0.0005, 0.9995], REPETITIONS, ALPHA)
    return low / REPETITIONS, high / REPETITIONS


def test_aa_false_positives_stay_within_alpha_and_the_interval_narrows_as_predicted() -> None:
    rng = np.random.default_rng(2024)
    propensity = rng.exponential(1.0, (REPETITIONS, 2, USERS))
    treated = _treated(propensity, seed=1)

    cuped_p = np.array([r.cuped_p_value for r in treated])
    rate = float((cuped_p <= ALPHA).mean())
    low, high = _false_positive_bounds()  # 0.039 .. 0.06175
    assert low <= rate <= high, rate

    ratio = np.array([(r.cuped_ci_high - r.cuped_ci_low) / (r.ci_high - r.ci_low) for r in treated])
    predicted = math.sqrt(1 - 0.75**2)
    assert ratio.mean() == pytest.approx(predicted, rel=0.01)
    reduction = np.array([r.variance_reduction for r in treated])
    assert reduction.mean() == pytest.approx(0.75**2, abs=0.01)


def test_aa_false_positives_with_the_generators_heavy_tailed_users() -> None:
    # The workload generator's activity rates: log-normal with sigma 1.3 (udf.workload.population).
    rng = np.random.default_rng(7)
    propensity = rng.lognormal(0.0, 1.3, (REPETITIONS, 2, USERS))
    treated = _treated(propensity, seed=2, a=2.0, b=3.0)
    cuped_p = np.array([r.cuped_p_value for r in treated])
    rate = float((cuped_p <= ALPHA).mean())
    assert rate <= _false_positive_bounds()[1], rate
    assert np.median([r.variance_reduction for r in treated]) > 0.5  # strongly predictive
