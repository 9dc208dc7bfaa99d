"""Sufficient statistics merge like the raw data they summarise."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from stats.codes import Code
from stats.sufficient import CovariateStats, RatioStats, SampleStats


def test_merging_partitions_equals_statistics_of_all_rows() -> None:
    rng = np.random.default_rng(1)
    values = rng.exponential(3.0, 1000)
    parts = np.array_split(values, 7)
    merged = SampleStats.zero()
    for part in parts:
        merged = merged + SampleStats.from_values(part)
    whole = SampleStats.from_values(values)
    assert merged.n == whole.n == 1000
    assert merged.sum == pytest.approx(whole.sum)
    assert merged.mean == pytest.approx(values.mean())
    assert merged.variance == pytest.approx(values.var(ddof=1))


def test_columnar_form_adds_cellwise_and_totals_buckets() -> None:
    rng = np.random.default_rng(2)
    buckets = rng.normal(size=(4, 3, 50))  # 4 time buckets x 3 cells x 50 units
    per_bucket = SampleStats.from_values(buckets)  # shape (4, 3)
    window = per_bucket.total(axis=0)
    expected = SampleStats.from_values(np.concatenate(list(buckets), axis=-1))
    np.testing.assert_allclose(window.sum, expected.sum)
    np.testing.assert_allclose(window.variance, expected.variance)
    added = per_bucket.take(0) + per_bucket.take(1)
    np.testing.assert_allclose(added.n, [100, 100, 100])


def test_stack_and_scalar_equality() -> None:
    a, b = SampleStats(3, 6, 14), SampleStats(2, 1, 1)
    stacked = SampleStats.stack([a, b])
    assert stacked.take(1) == SampleStats(2.0, 1.0, 1.0)
    assert a + b == SampleStats(5, 7, 15)


def test_ratio_and_covariate_cross_products_merge() -> None:
    rng = np.random.default_rng(3)
    num, den = rng.normal(size=300), rng.poisson(3, 300) + 1.0
    halves = RatioStats.from_values(num[:100], den[:100]) + RatioStats.from_values(
        num[100:], den[100:]
    )
    assert halves.covariance == pytest.approx(np.cov(num, den)[0, 1])
    cov = CovariateStats.from_values(num[:10], den[:10]) + CovariateStats.from_values(
        num[10:], den[10:]
    )
    assert cov.covariance == pytest.approx(np.cov(num, den)[0, 1])
    assert cov.pre.variance == pytest.approx(den.var(ddof=1))


@pytest.mark.parametrize(
    ("stats", "code"),
    [
        (SampleStats(0, 0, 0), Code.EMPTY_GROUP),
        (SampleStats(1, 5, 25), Code.TOO_FEW_UNITS),
        (SampleStats(5, 10, 1), Code.INVALID_INPUT),  # sum_sq < sum**2 / n
        (SampleStats(-1, 0, 0), Code.INVALID_INPUT),
        (SampleStats(3, float("nan"), 1), Code.INVALID_INPUT),
        (SampleStats(4, 8, 16), Code.OK),  # constant values: valid, zero variance
    ],
)
def test_validity_codes(stats: SampleStats, code: Code) -> None:
    assert int(stats.codes()) == code


def test_round_off_below_zero_is_clipped_not_invalid() -> None:
    values = np.full(1000, 1e6 + 0.1)
    stats = SampleStats.from_values(values)
    assert int(stats.codes()) == Code.OK
    assert stats.variance >= 0


def test_light_modules_import_without_scipy() -> None:
    code = (
        "import sys; sys.modules['scipy'] = None\n"
        "import stats, stats.sufficient, stats.codes\n"
        "assert stats.SampleStats(2, 2, 2).mean == 1.0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        (SampleStats.from_values([1.1] * 3), SampleStats.from_values([1.2] * 3)),
        (SampleStats.from_values([0.1] * 7), SampleStats.from_values([0.3] * 7)),
        # Constant group merged from two partitions (5 + 6 rows).
        (
            SampleStats.from_values([0.7] * 5) + SampleStats.from_values([0.7] * 6),
            SampleStats.from_values([0.9] * 11),
        ),
    ],
)
def test_constant_groups_have_exactly_zero_variance(
    control: SampleStats, treatment: SampleStats
) -> None:
    from stats.ttest import welch

    # Round-off in sum_sq - sum**2/n once gave 4e-16 and p-values like 1e-50 with code OK.
    assert control.variance == 0.0 and treatment.variance == 0.0
    result = welch(control, treatment)
    assert int(result.code) == Code.ZERO_VARIANCE
    assert np.isnan(result.p_value)
    assert result.lift_abs == pytest.approx(treatment.mean - control.mean, rel=1e-9)


def test_real_variance_with_tiny_coefficient_of_variation_is_kept() -> None:
    # Mean 1e6, sd 10: (sum_sq - sum**2/n) / sum_sq is about 1e-10, far above round-off
    # (64 machine epsilons); a 1e-9 relative cut-off would wrongly zero it.
    values = np.random.default_rng(4).normal(1e6, 10.0, 500)
    stats = SampleStats.from_values(values)
    assert stats.variance == pytest.approx(values.var(ddof=1), rel=1e-4)
    assert int(stats.codes()) == Code.OK
