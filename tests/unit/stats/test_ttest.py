"""Welch's t-test against scipy on many random cases, and its degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from stats.codes import Code
from stats.lift import Comparison
from stats.sufficient import SampleStats
from stats.ttest import welch


def random_groups(rng: np.random.Generator, size: int) -> tuple[SampleStats, SampleStats]:
    n_c, n_t = rng.integers(2, 5000, size), rng.integers(2, 5000, size)
    m_c, m_t = rng.uniform(0.1, 50, size), rng.uniform(0.1, 50, size)
    s_c, s_t = rng.uniform(0.01, 30, size), rng.uniform(0.01, 30, size)

    def make(n, m, s):
        return SampleStats(n.astype(float), n * m, (n - 1) * s**2 + n * m**2)

    return make(n_c, m_c, s_c), make(n_t, m_t, s_t)


def assert_nan_only_with_code(result: Comparison) -> None:
    """A NaN anywhere must come with a non-OK code."""
    for name in (
        "lift_abs",
        "lift_rel",
        "ci_low",
        "ci_high",
        "rel_ci_low",
        "rel_ci_high",
        "p_value",
    ):
        values = getattr(result, name)
        assert not np.any(np.isnan(values) & (result.code == Code.OK)), name
        assert not np.any(np.isinf(values)), name


def test_matches_scipy_on_random_cases() -> None:
    rng = np.random.default_rng(10)
    control, treatment = random_groups(rng, 2000)
    alpha = rng.choice([0.01, 0.05, 0.1], 2000)
    result = welch(control, treatment, alpha=alpha)
    ref = sps.ttest_ind_from_stats(
        treatment.mean,
        np.sqrt(treatment.variance),
        treatment.n,
        control.mean,
        np.sqrt(control.variance),
        control.n,
        equal_var=False,
    )
    np.testing.assert_allclose(result.p_value, ref.pvalue, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(result.lift_abs / result.se, ref.statistic, rtol=1e-10)
    crit = sps.t.ppf(1 - alpha / 2, result.df)
    np.testing.assert_allclose(result.ci_high - result.lift_abs, crit * result.se, rtol=1e-9)
    assert np.all(result.code == Code.OK)


def test_relative_interval_is_delta_method_with_welch_df() -> None:
    c = SampleStats.from_values(np.arange(1.0, 101.0))
    t = SampleStats.from_values(np.arange(11.0, 111.0) * 1.1)
    r = welch(c, t).row()
    var = t.variance / (c.mean**2 * t.n) + c.variance * t.mean**2 / (c.mean**4 * c.n)
    crit = sps.t.ppf(0.975, r["df"])
    assert r["lift_rel"] == pytest.approx(t.mean / c.mean - 1)
    assert r["rel_ci_high"] - r["lift_rel"] == pytest.approx(crit * np.sqrt(var))


@pytest.mark.parametrize(
    ("control", "treatment", "code", "finite"),
    [
        (SampleStats(0, 0, 0), SampleStats(10, 5, 5), Code.EMPTY_GROUP, ()),
        (SampleStats(1, 3, 9), SampleStats(10, 5, 5), Code.TOO_FEW_UNITS, ("lift_abs", "lift_rel")),
        (
            SampleStats(5, 10, 20),
            SampleStats(5, 15, 45),
            Code.ZERO_VARIANCE,
            ("lift_abs", "lift_rel"),
        ),
        (
            SampleStats(10, 0, 4),
            SampleStats(10, 5, 9),
            Code.ZERO_CONTROL_MEAN,
            ("lift_abs", "ci_low", "ci_high", "p_value"),
        ),
        (SampleStats(5, 0, 0), SampleStats(5, 0, 0), Code.ZERO_VARIANCE, ("lift_abs",)),
        (SampleStats(5, 10, 1), SampleStats(5, 5, 9), Code.INVALID_INPUT, ()),
    ],
)
def test_degenerate_inputs_give_codes_not_crashes(control, treatment, code, finite) -> None:
    result = welch(control, treatment)
    assert int(result.code) == code
    row = result.row()
    for name in ("lift_abs", "lift_rel", "ci_low", "ci_high", "p_value"):
        assert (row[name] is not None) == (name in finite), name
    assert_nan_only_with_code(result)


def test_mixed_column_of_degenerate_and_valid_cases() -> None:
    rng = np.random.default_rng(11)
    n = rng.integers(0, 4, 5000).astype(float)
    s = rng.integers(0, 3, 5000) * n
    ss = s * rng.integers(1, 3, 5000)
    c = SampleStats(n, s, ss)
    t = SampleStats(n[::-1].copy(), s[::-1].copy(), ss[::-1].copy())
    result = welch(c, t)
    assert_nan_only_with_code(result)
    assert set(np.unique(result.code)) > {Code.OK}


def test_one_call_computes_a_million_comparisons() -> None:
    rng = np.random.default_rng(12)
    control, treatment = random_groups(rng, 1_000_000)
    result = welch(control, treatment)
    assert len(result) == 1_000_000
    assert np.isfinite(result.p_value).all() and (result.code == Code.OK).all()
