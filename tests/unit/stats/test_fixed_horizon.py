"""Proportions, ratio and CUPED against independent computations on random cases."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportions_ztest

from stats.codes import Code
from stats.cuped import cuped
from stats.proportions import ztest
from stats.ratio import delta_ratio
from stats.sufficient import CovariateStats, RatioStats, SampleStats
from stats.ttest import welch


def test_proportions_match_statsmodels_on_random_cases() -> None:
    rng = np.random.default_rng(20)
    size = 300
    n = rng.integers(10, 20000, (size, 2))
    k = rng.binomial(n, rng.uniform(0.01, 0.9, (size, 2)))
    result = ztest(
        SampleStats.from_counts(n[:, 0], k[:, 0]), SampleStats.from_counts(n[:, 1], k[:, 1])
    )
    for i in range(size):
        _, p = proportions_ztest(k[i, ::-1], n[i, ::-1])
        assert result.p_value[i] == pytest.approx(p, rel=1e-9, abs=1e-300)
    assert np.all(result.code == Code.OK)


@pytest.mark.parametrize(
    ("k_c", "k_t", "code"),
    [
        (0, 0, Code.ZERO_VARIANCE),
        (50, 50, Code.ZERO_VARIANCE),
        (0, 5, Code.ZERO_CONTROL_MEAN),
        (60, 5, Code.INVALID_INPUT),
    ],
)
def test_proportion_edge_cases(k_c: int, k_t: int, code: Code) -> None:
    assert (
        int(ztest(SampleStats.from_counts(50, k_c), SampleStats.from_counts(50, k_t)).code) == code
    )


def test_ratio_reduces_to_welch_when_denominator_is_one() -> None:
    rng = np.random.default_rng(21)
    num_c, num_t = rng.normal(5, 2, 400), rng.normal(5.3, 2.5, 300)
    ratio = delta_ratio(
        RatioStats.from_values(num_c, np.ones(400)), RatioStats.from_values(num_t, np.ones(300))
    )
    plain = welch(SampleStats.from_values(num_c), SampleStats.from_values(num_t))
    for field in ("lift_abs", "lift_rel", "ci_low", "rel_ci_high", "p_value"):
        assert getattr(ratio, field) == pytest.approx(getattr(plain, field), rel=1e-9)


def test_ratio_delta_variance_matches_bootstrap_of_raw_units() -> None:
    rng = np.random.default_rng(22)
    den = rng.poisson(4, 3000) + 1.0
    num = 0.3 * den + rng.normal(0, 1, 3000)
    stats = RatioStats.from_values(num, den)
    from stats.ratio import ratio_variance

    _, unit_var = ratio_variance(stats)
    idx = rng.integers(0, 3000, (400, 3000))
    boot = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    assert np.sqrt(unit_var / 3000) == pytest.approx(boot.std(), rel=0.15)


def test_ratio_zero_denominator_gets_a_code() -> None:
    zero = RatioStats(10, 0, 0, 0, 0, 0)
    other = RatioStats.from_values(np.arange(10.0), np.ones(10))
    assert int(delta_ratio(zero, other).code) == Code.ZERO_DENOMINATOR


def test_cuped_with_zero_theta_is_welch_and_reduces_variance() -> None:
    rng = np.random.default_rng(23)
    pre_c, pre_t = rng.normal(10, 3, 2000), rng.normal(10, 3, 2000)
    post_c = 0.9 * pre_c + rng.normal(0, 1, 2000)
    post_t = 0.9 * pre_t + rng.normal(0.2, 1, 2000)
    c, t = CovariateStats.from_values(post_c, pre_c), CovariateStats.from_values(post_t, pre_t)
    plain = welch(c.post, t.post)
    unadjusted = cuped(c, t, theta=0.0)
    assert unadjusted.p_value == pytest.approx(plain.p_value, rel=1e-9)
    adjusted = cuped(c, t)
    assert adjusted.se < 0.5 * plain.se
    # Same estimate as the regression y ~ treatment + pre with a pooled slope.
    theta = np.cov(np.r_[post_c, post_t], np.r_[pre_c, pre_t])[0, 1] / np.var(
        np.r_[pre_c, pre_t], ddof=1
    )
    expected = (post_t - theta * pre_t).mean() - (post_c - theta * pre_c).mean()
    assert adjusted.lift_abs == pytest.approx(expected, rel=1e-9)
