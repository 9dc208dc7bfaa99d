"""Aggregation periods (the contract §3), including the contract's worked example."""

from __future__ import annotations

import pytest

from metadata.periods import DAY_MS, Period, aggregation_periods, period_at, window_ms

T0 = 1767225600000  # 2026-01-01T00:00Z
W = window_ms(3)


def test_contract_example_extends_then_opens_a_new_period() -> None:
    periods = aggregation_periods([T0, T0 + DAY_MS, T0 + 5 * DAY_MS], W)
    assert periods == [
        Period(T0, T0 + 4 * DAY_MS, (T0, T0 + DAY_MS)),
        Period(T0 + 5 * DAY_MS, T0 + 8 * DAY_MS, (T0 + 5 * DAY_MS,)),
    ]


def test_a_ramp_exactly_at_the_end_opens_a_new_period() -> None:
    assert [p.start for p in aggregation_periods([T0, T0 + W], W)] == [T0, T0 + W]


def test_a_ramp_just_before_the_end_extends() -> None:
    (period,) = aggregation_periods([T0, T0 + W - 1], W)
    assert (period.start, period.end) == (T0, T0 + 2 * W - 1)


def test_order_and_duplicates_do_not_matter() -> None:
    ramps = [T0 + 5 * DAY_MS, T0, T0 + DAY_MS, T0]
    assert aggregation_periods(ramps, W) == aggregation_periods(sorted(set(ramps)), W)


def test_no_ramps_no_periods_and_a_bad_window_is_refused() -> None:
    assert aggregation_periods([], W) == []
    with pytest.raises(ValueError):
        aggregation_periods([T0], 0)
    with pytest.raises(ValueError):
        window_ms(0)


def test_period_at_finds_the_containing_period() -> None:
    periods = aggregation_periods([T0, T0 + DAY_MS, T0 + 5 * DAY_MS], W)
    assert period_at(periods, T0 - 1) is None
    assert period_at(periods, T0) == periods[0]
    assert period_at(periods, T0 + 4 * DAY_MS - 1) == periods[0]
    assert period_at(periods, T0 + 4 * DAY_MS + 3_600_000) is None  # between periods
    assert period_at(periods, T0 + 6 * DAY_MS) == periods[1]
    assert period_at(periods, T0 + 8 * DAY_MS) is None
