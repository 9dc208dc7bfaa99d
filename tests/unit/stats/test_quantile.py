"""Quantile metrics' statistics: reference values and an A/A Monte Carlo of the coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from stats.codes import Code
from stats.quantile import QuantileStats, quantile_test

REPLICATES = 8000
UNITS = 1000


def test_a_group_matches_numpy_on_raw_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(0, 1, 501)
    got = QuantileStats.of(x, 0.9, 0.05)
    z = sps.norm.ppf(0.975)
    half = z * math.sqrt(0.9 * 0.1 / 501)
    assert got.quantile[0] == np.percentile(x, 90)
    assert got.low[0] == np.percentile(x, 100 * (0.9 - half))
    assert got.high[0] == np.percentile(x, 100 * (0.9 + half))


def test_the_comparison_is_a_z_test_on_the_interval_widths() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.exponential(1.0, 800), rng.exponential(1.2, 800)
    c, t = QuantileStats.of(a, 0.5, 0.1), QuantileStats.of(b, 0.5, 0.1)
    got = quantile_test(c, t, 0.1).row(0)
    z = sps.norm.ppf(0.95)
    se_c = (c.high[0] - c.low[0]) / (2 * z)
    se_t = (t.high[0] - t.low[0]) / (2 * z)
    diff = np.median(b) - np.median(a)
    se = math.hypot(se_c, se_t)
    assert math.isclose(got["lift_abs"], diff, rel_tol=1e-12)
    assert math.isclose(got["ci_low"], diff - z * se, rel_tol=1e-12)
    assert math.isclose(got["p_value"], 2 * sps.norm.sf(abs(diff) / se), rel_tol=1e-9)
    ratio = np.median(b) / np.median(a)
    rel_se = math.sqrt(
        se_t**2 / np.median(a) ** 2 + se_c**2 * np.median(b) ** 2 / np.median(a) ** 4
    )
    assert math.isclose(got["lift_rel"], ratio - 1, rel_tol=1e-12)
    assert math.isclose(got["rel_ci_high"], ratio - 1 + z * rel_se, rel_tol=1e-9)


def test_too_few_units_have_no_inference() -> None:
    one = QuantileStats(np.array([1.0]), np.array([2.0]), np.array([2.0]), np.array([2.0]))
    got = quantile_test(one, one).row(0)
    assert got["code"] is Code.TOO_FEW_UNITS and got["p_value"] is None


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_aa_coverage_is_within_one_point_of_nominal(level: float) -> None:
    """A/A: both groups from one log-normal; the 95% intervals of the absolute and the
    relative difference must hold 0 in 94-96% of replicates (docs/statistics.md)."""
    rng = np.random.default_rng(17)
    a = rng.lognormal(0.0, 1.0, (REPLICATES, UNITS))
    b = rng.lognormal(0.0, 1.0, (REPLICATES, UNITS))
    got = quantile_test(QuantileStats.of(a, level, 0.05), QuantileStats.of(b, level, 0.05), 0.05)
    absolute = np.mean((got.ci_low <= 0) & (got.ci_high >= 0))
    relative = np.mean((got.rel_ci_low <= 0) & (got.rel_ci_high >= 0))
    assert abs(absolute - 0.95) <= 0.01, absolute
    assert abs(relative - 0.95) <= 0.01, relative
