"""Health checks (results.health) and the MDE of comparisons, on hand-made rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower

from results.comparisons import compare_groups
from results.health import allocation_intervals, expected_counts, health_rows
from tests.support.result_rows import make_row
from udf.config.catalog import CatalogFile

START = 1_767_225_600_000
HOUR = 3_600_000


def test_allocation_intervals_follow_every_ramp_of_every_group() -> None:
    ramps = [("e", "control", START, 10.0), ("e", "treatment", START, 10.0),
             ("e", "treatment", START + 5 * HOUR, 30.0), ("e", "control", START + 9 * HOUR, 30.0)]  # fmt: skip
    got = [(i.start, i.allocation) for i in allocation_intervals(ramps)]
    assert got == [
        (START, {"control": 10.0, "treatment": 10.0}),
        (START + 5 * HOUR, {"control": 10.0, "treatment": 30.0}),
        (START + 9 * HOUR, {"control": 30.0, "treatment": 30.0}),
    ]
    intervals = allocation_intervals(ramps)
    # 100 users while 10/10, 400 while 10/30, 100 while 30/30
    expected = expected_counts({0: 100, 1: 400, 2: 100}, intervals, ["control", "treatment"])
    assert expected == pytest.approx({"control": 50 + 100 + 50, "treatment": 50 + 300 + 50})


def _rows(n_c: int, n_t: int, **more) -> list:
    return [make_row(group="control", exposed=n_c, n=n_c, **more),
            make_row(group="treatment", exposed=n_t, n=n_t, **more),
            make_row(group="treatment", exposed=n_t // 2, n=n_t // 2, segment="country",
                     segment_value="US", **more)]  # fmt: skip


def test_srm_is_the_chi_square_against_the_allocation_and_flags_every_row() -> None:
    intervals = allocation_intervals(
        [("exp", "control", START, 50.0), ("exp", "treatment", START, 50.0)]
    )
    cell = ("exp", START, 0)
    rows = health_rows(_rows(440, 560), {cell: {0: 1000}}, intervals,
                       {("exp", START): ["control", "treatment"]}, {"exp": 0.001})  # fmt: skip
    p = sps.chisquare([440, 560]).pvalue
    assert all(math.isclose(r.srm_p_value, p, rel_tol=1e-12) and r.health == "srm" for r in rows)
    fine = health_rows(_rows(495, 505), {cell: {0: 1000}}, intervals,
                       {("exp", START): ["control", "treatment"]}, {"exp": 0.001})  # fmt: skip
    assert all(r.health == "" and r.srm_p_value > 0.5 for r in fine)


def test_users_in_two_groups_and_groups_without_data_are_flagged() -> None:
    ramps = [("exp", g, START, 33.0) for g in ("control", "treatment", "treatment_b")]
    rows = _rows(500, 500, multiple_groups=4)
    got = health_rows(rows, {("exp", START, 0): {0: 1000}}, allocation_intervals(ramps),
                      {("exp", START): ["control", "treatment", "treatment_b"]}, {"exp": 0.001})  # fmt: skip
    assert {r.health for r in got} == {"srm,multiple_groups,no_data:treatment_b"}


def test_the_mde_is_where_statsmodels_gives_the_configured_power() -> None:
    rng = np.random.default_rng(3)
    c, t = rng.exponential(2.0, 700), rng.exponential(2.2, 900)
    rows = [make_row(group=g, n=len(x), exposed=len(x), sum=float(x.sum()), sum_sq=float((x * x).sum()))
            for g, x in (("control", c), ("treatment", t))]  # fmt: skip
    [_, out] = compare_groups(
        rows, frozenset({("exp", "control")}), {"exp": {"power": 0.9, "alpha": 0.1}}
    )
    se = math.sqrt(c.var(ddof=1) / len(c) + t.var(ddof=1) / len(t))
    sigma = se / math.sqrt(1 / len(c) + 1 / len(t))
    power = NormalIndPower().power(out.mde / sigma, len(c), 0.1, ratio=len(t) / len(c))
    assert math.isclose(power, 0.9, rel_tol=1e-9)
    assert math.isclose(out.mde_rel, out.mde / c.mean(), rel_tol=1e-12)


def test_catalog_options_are_checked_all_at_once() -> None:
    from pydantic import ValidationError

    bad = {"metrics": [
        {"name": "a", "type": "aggregated", "ratio": {"numerator": {"event_type": "x"},
         "denominator": {"event_type": "y"}}, "winsorize": {"percentile": 99}},
        {"name": "b", "type": "aggregated", "event_type": "x", "window_hours": -1},
        {"name": "c", "type": "aggregated", "event_type": "x", "quantile": {"level": 1.5}},
        {"name": "d", "type": "aggregated", "event_type": "x", "winsorize": {"percentile": 99, "x": 1}},
    ]}  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        CatalogFile.model_validate(bad)
    assert len(caught.value.errors()) == 4


def test_quantile_rows_compare_their_quantiles_even_with_a_zero_bound() -> None:
    rows = [make_row(group="control", n=400, quantile=0.0, quantile_low=0.0, quantile_high=2.0),
            make_row(group="treatment", n=500, quantile=1.0, quantile_low=0.0, quantile_high=3.0)]  # fmt: skip
    [_, out] = compare_groups(rows, frozenset({("exp", "control")}), {})
    z = sps.norm.ppf(0.975)
    se = math.hypot(2.0 / (2 * z), 3.0 / (2 * z))
    assert out.status == "zero_control_mean" and out.lift_abs == 1.0 and out.lift_rel is None
    assert math.isclose(out.ci_high, 1.0 + z * se, rel_tol=1e-12)
    assert math.isclose(out.p_value, 2 * sps.norm.sf(1.0 / se), rel_tol=1e-9)
