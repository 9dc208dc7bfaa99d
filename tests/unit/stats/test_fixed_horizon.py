"""Proportions, ratio and CUPED against independent computations on random cases."""

from __future__ import annotations

import dataclasses

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


@pytest.mark.parametrize(("k_c", "k_t"), [(0, 100), (100, 0), (0, 37), (100, 63)])
def test_proportions_at_0_or_100_percent_test_with_the_pooled_se(k_c: int, k_t: int) -> None:
    result = ztest(SampleStats.from_counts(100, k_c), SampleStats.from_counts(100, k_t))
    z, p = proportions_ztest([k_t, k_c], [100, 100])
    assert result.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)
    if {k_c, k_t} == {0, 100}:
        assert abs(z) == pytest.approx(np.sqrt(200))  # 14.1: was ZERO_VARIANCE, p NaN
    assert int(result.code) == (Code.ZERO_CONTROL_MEAN if k_c == 0 else Code.OK)
    # The unpooled test has a zero standard error when both groups are at 0% or 100%.
    unpooled = ztest(
        SampleStats.from_counts(100, k_c), SampleStats.from_counts(100, k_t), pooled=False
    )
    assert (int(unpooled.code) == Code.ZERO_VARIANCE) == (k_c in (0, 100) and k_t in (0, 100))


@pytest.mark.parametrize(("n", "k"), [(50, 2.5), (50.5, 3), (50, float("nan"))])
def test_proportions_with_non_integer_counts_are_invalid(n: float, k: float) -> None:
    result = ztest(SampleStats.from_counts(n, k), SampleStats.from_counts(50, 10))
    assert int(result.code) == Code.INVALID_INPUT and np.isnan(result.p_value)


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
    # 2,000 bootstrap draws (in chunks, to keep memory small): the bootstrap SE itself
    # has a relative sampling error of about 1/sqrt(2 * 2000) = 1.6%, so 6% is ~4 of them,
    # yet tight enough to catch a variance 30% off (14% in the SE), which 15% let through.
    boot = np.concatenate(
        [
            num[idx].sum(axis=1) / den[idx].sum(axis=1)
            for idx in (rng.integers(0, 3000, (250, 3000)) for _ in range(8))
        ]
    )
    assert len(boot) == 2000
    assert np.sqrt(unit_var / 3000) == pytest.approx(boot.std(ddof=1), rel=0.06)


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
    # With unbalanced pre means, CUPED's pooled theta (total covariance over both groups)
    # differs from the OLS slope (within groups) by a between-group term of order
    # effect x pre imbalance; the lifts then differ by a tiny fraction of the SE.
    ols = _ols_y_on_treatment_and_pre(post_c, pre_c, post_t, pre_t)
    assert abs(adjusted.lift_abs - ols.params[1]) < 0.02 * adjusted.se


def _ols_y_on_treatment_and_pre(post_c, pre_c, post_t, pre_t):
    import statsmodels.api as sm

    d = np.r_[np.zeros(len(post_c)), np.ones(len(post_t))]
    x = sm.add_constant(np.column_stack([d, np.r_[pre_c, pre_t]]))
    return sm.OLS(np.r_[post_c, post_t], x).fit()


def test_cuped_equals_ols_on_treatment_and_pre_when_pre_means_are_equal() -> None:
    """Independent check against statsmodels OLS ``y ~ 1 + treatment + pre``.

    When both groups have the same pre-period mean (here: the same pre values, shuffled),
    the pooled slope of CUPED equals the OLS slope exactly (the between-group term of the
    pooled covariance vanishes), so the lift equals the OLS treatment coefficient. The
    standard errors differ only in how the residual variance is pooled: with ``n`` units
    per group, CUPED's Welch variance is ``RSS / (n (n-1))`` and OLS's is
    ``RSS / (2n-3) * 2/n``, so ``se_cuped = se_ols * sqrt((2n-3) / (2(n-1)))`` exactly.
    """
    from stats.cuped import pooled_theta

    rng = np.random.default_rng(27)
    n = 1500
    pre_c = rng.gamma(2.0, 5.0, n)
    pre_t = rng.permutation(pre_c)
    post_c = 0.8 * pre_c + rng.normal(0, 2, n)
    post_t = 0.8 * pre_t + rng.normal(0.3, 2.5, n)
    c, t = CovariateStats.from_values(post_c, pre_c), CovariateStats.from_values(post_t, pre_t)
    result = cuped(c, t)
    ols = _ols_y_on_treatment_and_pre(post_c, pre_c, post_t, pre_t)
    assert pooled_theta(c, t) == pytest.approx(ols.params[2], rel=1e-9)
    assert result.lift_abs == pytest.approx(ols.params[1], rel=1e-9)
    assert result.se == pytest.approx(ols.bse[1] * np.sqrt((2 * n - 3) / (2 * (n - 1))), rel=1e-9)


def _with_correlation(stats, rho: float):
    """The same statistics with the cross-product of a correlation ``rho`` between the two
    per-unit values (|rho| > 1 is impossible: Cauchy-Schwarz)."""
    n, sx, sxx, sy, syy, _ = (getattr(stats, f.name) for f in dataclasses.fields(stats))
    var_x, var_y = SampleStats(n, sx, sxx).variance, SampleStats(n, sy, syy).variance
    cross = sx * sy / n + rho * np.sqrt(var_x * var_y) * (n - 1)
    return type(stats)(n, sx, sxx, sy, syy, cross)


def test_cuped_with_an_impossible_correlation_is_invalid_input() -> None:
    rng = np.random.default_rng(24)
    pre = rng.normal(10, 3, 500)
    post = 0.5 * pre + rng.normal(0, 1, 500)
    c, t = CovariateStats.from_values(post, pre), CovariateStats.from_values(post + 0.01, pre)
    assert int(cuped(c, t).code) == Code.OK
    bad = _with_correlation(c, 3.0)
    assert int(bad.codes()) == Code.INVALID_INPUT
    result = cuped(bad, t)
    # It used to clip the negative adjusted variance to 0 and report p = 0.92, code OK.
    assert int(result.code) == Code.INVALID_INPUT and np.isnan(result.p_value)
    assert int(cuped(bad, t, theta=0.0).code) == Code.INVALID_INPUT


def test_ratio_with_an_impossible_correlation_is_invalid_input() -> None:
    rng = np.random.default_rng(25)
    num, den = rng.normal(3, 1, 500), rng.poisson(5, 500) + 1.0
    c, t = RatioStats.from_values(num, den), RatioStats.from_values(num * 1.01, den)
    assert int(delta_ratio(c, t).code) == Code.OK
    bad = _with_correlation(c, 5.0)
    assert int(bad.codes()) == Code.INVALID_INPUT
    result = delta_ratio(bad, t)
    assert int(result.code) == Code.INVALID_INPUT and np.isnan(result.p_value)


def test_perfect_correlation_within_round_off_is_valid() -> None:
    rng = np.random.default_rng(26)
    pre = rng.normal(1e3, 30, 1000)
    exact = CovariateStats.from_values(2.5 * pre + 7, pre)  # correlation exactly 1
    assert int(exact.codes()) == Code.OK
    assert int(_with_correlation(exact, -1.0).codes()) == Code.OK
    ratio = RatioStats.from_values(0.3 * pre, pre)  # constant per-unit ratio
    assert int(ratio.codes()) == Code.OK
    other = RatioStats.from_values(0.3 * pre + rng.normal(0, 1, 1000), pre)
    assert int(delta_ratio(ratio, other).code) == Code.OK
    constant = RatioStats.from_values(rng.normal(5, 2, 100), np.full(100, 0.7))
    assert int(constant.codes()) == Code.OK  # zero denominator variance, round-off covariance
