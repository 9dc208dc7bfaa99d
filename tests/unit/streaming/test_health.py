"""The stream's health checks from hand-made group totals: SRM against the allocation in force
when each user was exposed, summed over the period's groups; expected values from scipy.
The real-time verdicts' always-valid SRM is checked against scipy's Dirichlet-multinomial."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from metadata.periods import DAY_MS, window_ms
from metadata.records import RampRow
from metadata.repository import MetadataStore
from results.schema import ResultRow
from streaming.health import HealthChecks
from udf.home import Home

T0 = 1_767_225_600_000  # 2026-01-01
D = T0 // DAY_MS + 1  # the day after: both intervals have users
END = T0 + 4 * DAY_MS  # the period, extended by the re-ramp at T0 + 1 day


def row(group: str, exposed: int, multiple_groups: int = 0) -> ResultRow:
    return ResultRow(
        experiment="exp", group=group, metric="click", metric_type="aggregated",
        period_start=T0, period_end=END, date="2026-01-02", day_in=0, segment="",
        segment_value="", exposed=exposed, volume=0, propensity=0, n=exposed, sum=0.0,
        sum_sq=0.0, multiple_groups=multiple_groups, source="stream",
    )  # fmt: skip


def interval(group: str, start: int, users: int) -> tuple[tuple, tuple]:
    return (group, T0, END, "", "", "interval", str(start)), (users, 0, 0, 0.0, 0.0, 0)


@pytest.fixture
def checks(home: Home) -> HealthChecks:
    with MetadataStore.for_home(home) as store:
        store.import_ramps([
            RampRow("exp", "control", T0, 50.0), RampRow("exp", "treatment", T0, 50.0),
            RampRow("exp", "control", T0 + DAY_MS, 50.0),
            RampRow("exp", "treatment", T0 + DAY_MS, 100.0),  # 1/3 : 2/3 from the re-ramp
            RampRow("exp", "treatment_b", T0 + 9 * DAY_MS, 10.0),  # a period later on
        ])  # fmt: skip
    return HealthChecks(home, window_ms(3), {"exp": 0.05})


def test_srm_weighs_each_interval_by_its_allocation_over_every_group(checks) -> None:
    # 60 users before the re-ramp (30 and 30), 150 after it (90 and 60): an even split in
    # all, which the allocation after the re-ramp (1/3 : 2/3) did not configure
    totals = dict([interval("control", T0, 30), interval("control", T0 + DAY_MS, 90),
                   interval("treatment", T0, 30), interval("treatment", T0 + DAY_MS, 60)])  # fmt: skip
    rows = checks.rows("exp", D, totals, [row("control", 120), row("treatment", 90, 2)])
    p = stats.chisquare([120, 90], [60 / 2 + 150 / 3, 60 / 2 + 150 * 2 / 3]).pvalue
    assert p < 1e-6
    assert [r.srm_p_value for r in rows] == [pytest.approx(p, rel=1e-12)] * 2
    assert [r.health for r in rows] == ["srm,multiple_groups"] * 2


def test_an_even_split_is_healthy_and_a_period_without_users_is_flagged(checks) -> None:
    totals = dict([interval("control", T0, 30), interval("control", T0 + DAY_MS, 30),
                   interval("treatment", T0, 30), interval("treatment", T0 + DAY_MS, 60)])  # fmt: skip
    rows = checks.rows("exp", D, totals, [row("control", 60), row("treatment", 90)])
    assert [r.srm_p_value for r in rows] == [pytest.approx(1.0)] * 2
    assert [r.health for r in rows] == ["", ""]
    # only the control has users: the treatment's period has none (and treatment_b's period
    # is not on the date)
    [alone] = checks.rows("exp", D, dict([interval("control", T0, 5)]), [row("control", 5)])
    assert alone.srm_p_value == pytest.approx(stats.chisquare([5, 0], [2.5, 2.5]).pvalue)
    assert alone.health == "srm,no_data:treatment"


def bayes_factor(counts: list[int], shares: list[float], concentration: float = 100.0) -> float:
    """Dirichlet-multinomial over multinomial likelihood of one stratum's counts (scipy)."""
    n, p0 = sum(counts), np.array(shares) / sum(shares)
    mixture = stats.dirichlet_multinomial.pmf(counts, concentration * p0, n)
    return float(mixture / stats.multinomial.pmf(counts, n, p0))


def test_realtime_srm_is_always_valid_per_allocation_interval(checks) -> None:
    # the totals of the first test: an even split before the re-ramp, 90/60 after it where
    # 1/3 : 2/3 was configured
    totals = dict([interval("control", T0, 30), interval("control", T0 + DAY_MS, 90),
                   interval("treatment", T0, 30), interval("treatment", T0 + DAY_MS, 60)])  # fmt: skip
    rows = [row("control", 120), row("treatment", 90, 2)]
    checks.rows("exp", D, totals, rows)
    [health] = checks.realtime("exp", totals, rows)
    bf = bayes_factor([30, 30], [50, 50]) * bayes_factor([90, 60], [50, 100])
    assert health.p_value == pytest.approx(1 / bf, rel=1e-9) and health.p_value < 1e-4
    assert (health.period_start, health.units, health.alpha) == (T0, 210, 0.05)
    assert health.flags == "srm,multiple_groups"


def test_realtime_srm_judges_each_write_and_an_even_split_passes(checks) -> None:
    even = dict([interval("control", T0, 40), interval("treatment", T0, 41)])
    rows = [row("control", 40), row("treatment", 41)]
    checks.rows("exp", D, even, rows)
    [first] = checks.realtime("exp", even, rows)
    assert first.p_value == pytest.approx(min(1.0, 1 / bayes_factor([40, 41], [1, 1])))
    assert first.p_value > 0.5 and first.flags == ""
    skewed = dict([interval("control", T0, 40), interval("treatment", T0, 41),
                   interval("control", T0 + DAY_MS, 20), interval("treatment", T0 + DAY_MS, 100)])  # fmt: skip
    [second] = checks.realtime("exp", skewed, rows)
    expected = 1 / (bayes_factor([40, 41], [1, 1]) * bayes_factor([20, 100], [1, 2]))
    assert second.p_value == pytest.approx(expected, rel=1e-9) and second.flags == "srm"
    # counts that were corrected (a changelog takes users back) are judged as they are now
    [third] = checks.realtime("exp", even, rows)
    assert third.p_value == first.p_value and third.flags == ""


def test_realtime_srm_pauses_after_a_ramp_appears_during_a_run(home: Home) -> None:
    with MetadataStore.for_home(home) as store:
        store.import_ramps([RampRow("exp", "control", T0, 50.0),
                            RampRow("exp", "treatment", T0, 50.0)])  # fmt: skip
    checks = HealthChecks(home, window_ms(3), {"exp": 0.05}, settle_seconds=3600)
    # the ramps of the first load are the first snapshot's too: judged at once
    skewed = dict([interval("control", T0, 20), interval("treatment", T0, 100)])
    rows = [row("control", 20), row("treatment", 100)]
    [verdict] = checks.realtime("exp", skewed, rows)
    assert verdict.flags == "srm"
    # a re-ramp to 1/3 : 2/3: until the pipeline's periods follow it, users exposed after it
    # still count under the interval before it, so the experiment has no verdict for a while
    with MetadataStore.for_home(home) as store:
        store.import_ramps([RampRow("exp", "treatment", T0 + DAY_MS, 100.0)])
    checks.loaded_at = float("-inf")  # a minute later: the checks read the ramps again
    assert [r.health for r in checks.rows("exp", D, skewed, rows)] == ["srm", "srm"]  # (batch's)
    assert checks.realtime("exp", skewed, rows) == []
    checks.settle_seconds = 0.0
    [after] = checks.realtime("exp", skewed, rows)
    assert after == verdict
