"""The validation rules on hand-made rows (the numbers are written here, not computed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from results.schema import ResultRow
from streaming.validation.rules import difference, scenario_of, validate

DAY_MS = 86_400_000
W = 3 * DAY_MS
P1, P2 = 0, 5 * DAY_MS  # a first period, and one opened by a re-ramp after the window


def row(day: str, source: str, exposed: int, volume: int, start: int = P1, **more) -> ResultRow:
    return ResultRow(
        experiment="e", group="treatment", metric="click", metric_type="aggregated",
        period_start=start, period_end=start + W, date=day, day_in=0, segment="",
        segment_value="", exposed=exposed, volume=volume, propensity=exposed, n=exposed,
        sum=float(volume), sum_sq=float(volume), source=source, **more,
    )  # fmt: skip


def run(stream, batch, scenario="single", first=P1, excluding=()):
    return validate(
        date(1970, 1, 7), stream, batch, scenarios={"e": scenario},
        first_periods={("e", "treatment"): first}, threshold=0.02, excluding=excluding,
    )  # fmt: skip


def test_difference() -> None:
    assert difference(103, 100) == pytest.approx(0.03)
    assert difference(None, None) == 0 and difference(None, 1) == 1 and difference(1, 0) == 1
    assert difference(0, 0) == 0


def test_scenarios_from_ramps() -> None:
    assert scenario_of([[0], [0]], W, 10 * DAY_MS) == "single"
    assert scenario_of([[0, DAY_MS], [0]], W, 10 * DAY_MS) == "reramp_in"
    assert scenario_of([[0, 4 * DAY_MS], [0]], W, 10 * DAY_MS) == "reramp_after"
    assert scenario_of([[0, 4 * DAY_MS]], W, 2 * DAY_MS) == "single"  # not yet re-ramped


def test_clean_rows_pass_with_no_difference() -> None:
    stream = [row("1970-01-06", "stream", 10, 20), row("1970-01-07", "stream", 12, 25)]
    report = run(stream, [row("1970-01-07", "batch", 12, 25)])
    assert report.passed and report.max_difference == 0 and report.stream_rows == 1


def test_a_decrease_is_caught() -> None:
    stream = [row("1970-01-06", "stream", 10, 26), row("1970-01-07", "stream", 12, 25)]
    report = run(stream, [row("1970-01-07", "batch", 12, 25)], "reramp_in")
    [v] = report.violations
    assert (v.rule, v.scenario, v.field, v.stream, v.expected) == (
        "never_decreases",
        "reramp_in",
        "volume",
        25,
        26,
    )
    assert "went down from 26 on 1970-01-06 to 25 on 1970-01-07" in v.message


def test_a_decrease_from_users_left_out_for_a_second_group_is_not_a_violation() -> None:
    yesterday = row("1970-01-06", "stream", 10, 26)
    today = replace(row("1970-01-07", "stream", 9, 25), multiple_groups=1)
    batch = [replace(row("1970-01-07", "batch", 9, 25), multiple_groups=1)]
    assert run([yesterday, today], batch, excluding={"e"}).passed
    # kept in both groups, or no user in two groups: the same decrease is caught
    assert not run([yesterday, today], batch).passed
    assert not run([yesterday, replace(today, multiple_groups=0)], batch, excluding={"e"}).passed


def test_a_period_carried_over_a_reramp_is_caught() -> None:
    carried = row("1970-01-07", "stream", 40 + 3, 90 + 5, start=P2)
    report = run([carried], [row("1970-01-07", "batch", 3, 5, start=P2)], "reramp_after")
    reset = [v for v in report.violations if v.rule == "resets_after_reramp"]
    assert {v.field for v in reset} == {"exposed", "volume", "propensity", "n"}
    [volume] = [v for v in reset if v.field == "volume"]
    assert ("did not start from zero: stream volume 95 on 1970-01-07, counting from the re-ramp "
            "gives 5") in volume.message  # fmt: skip
    # a first period has nothing to carry: the rule does not apply to it
    clean = run([row("1970-01-07", "stream", 3, 5)], [row("1970-01-07", "batch", 3, 5)])
    assert all(c.rows == 0 for c in clean.checks if c.rule == "resets_after_reramp")


def test_a_3_percent_discrepancy_is_caught_and_2_percent_passes() -> None:
    batch = [row("1970-01-07", "batch", 100, 1000)]
    report = run([row("1970-01-07", "stream", 100, 1030)], batch)
    assert [v.field for v in report.violations] == ["volume", "sum", "sum_sq"]
    assert report.max_difference == pytest.approx(0.03)
    ok = run([replace(row("1970-01-07", "stream", 100, 1020), sum=1000.0, sum_sq=1000.0)], batch)
    assert ok.passed and ok.max_difference == pytest.approx(0.02)


def test_a_missing_stream_row_is_a_full_difference() -> None:
    report = run([], [row("1970-01-07", "batch", 1, 1)])
    [v] = report.violations
    assert v.difference == 1.0 and "a batch row on 1970-01-07 with no stream row" in v.message
