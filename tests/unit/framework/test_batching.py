"""Batches: first come first served, sized by work, pool slots and the size cap."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from metadata.records import RunInfo
from udf.framework.batching import DONE_REASON, Pending, estimate_durations, make_batches

T = datetime(2026, 1, 6, tzinfo=UTC)
D1, D2 = date(2026, 1, 4), date(2026, 1, 5)


def pending(n: int, ds: date = D2, seconds: float | None = 60.0, start: int = 0) -> list[Pending]:
    return [
        Pending(f"m{i:03d}", ds, T + timedelta(minutes=i), seconds) for i in range(start, start + n)
    ]


def cut(items, **kw):
    options = {
        "pool_slots": 4,
        "target_batch_seconds": 600.0,
        "max_batch_size": 50,
        "min_batch_seconds": 60.0,
        "default_estimate": 60.0,
    }
    options.update(kw)
    return make_batches(items, **options)


def test_little_work_stays_in_one_batch_even_with_idle_slots() -> None:
    batches = cut(pending(3, seconds=10))  # 30 s of work: a split would cost more scans
    assert [b.metrics for b in batches] == [["m000", "m001", "m002"]]


def test_idle_slots_are_filled_when_the_work_is_worth_splitting() -> None:
    batches = cut(pending(8, seconds=60))  # 480 s < target, but 8 x 60 s fills 4 slots
    assert len(batches) == 4
    assert [len(b.items) for b in batches] == [2, 2, 2, 2]


def test_heavy_work_is_cut_to_the_target_duration_beyond_the_pool() -> None:
    batches = cut(pending(40, seconds=120))  # 4800 s: 8 batches of ~600 s, queued in 4 slots
    assert len(batches) == 8
    assert all(b.estimate_seconds <= 600 for b in batches)


def test_the_size_cap_holds_even_for_instant_metrics() -> None:
    batches = cut(pending(120, seconds=0.1), max_batch_size=50)
    assert [len(b.items) for b in batches] == [40, 40, 40]


def test_measured_durations_balance_the_batches() -> None:
    items = [*pending(1, seconds=900), *pending(6, seconds=50, start=1)]
    batches = cut(items, pool_slots=2)
    assert batches[0].metrics == ["m000"]  # the slow one alone
    assert batches[1].metrics == [f"m{i:03d}" for i in range(1, 7)]


def test_unmeasured_metrics_use_the_default_estimate() -> None:
    batches = cut(pending(10, seconds=None), default_estimate=300.0)
    assert len(batches) == 5


def test_oldest_waiting_first_and_one_day_per_batch() -> None:
    late = Pending("old", D1, T - timedelta(days=1), 60)
    batches = cut([*pending(3, seconds=10), late])
    assert [(b.ds, b.metrics) for b in batches] == [
        (D1, ["old"]),
        (D2, ["m000", "m001", "m002"]),
    ]


def test_nothing_waiting_means_no_batch_and_bad_knobs_are_refused() -> None:
    assert cut([]) == []
    with pytest.raises(ValueError):
        cut(pending(1), pool_slots=0)


@settings(max_examples=200, deadline=None)
@example(costs=[1.0, 1.0, 1.0] + [0.0] * 6, days=1, slots=1, size=3, target=1.0)
@given(
    costs=st.lists(st.floats(min_value=0, max_value=2000), min_size=1, max_size=80),
    days=st.integers(min_value=1, max_value=3),
    slots=st.integers(min_value=1, max_value=8),
    size=st.integers(min_value=1, max_value=20),
    target=st.floats(min_value=1, max_value=3000),
)
def test_every_item_once_in_order_within_the_caps(costs, days, slots, size, target) -> None:
    items = [
        Pending(f"m{i}", D2 - timedelta(days=i % days), T + timedelta(seconds=i), c)
        for i, c in enumerate(costs)
    ]
    batches = cut(items, pool_slots=slots, max_batch_size=size, target_batch_seconds=target)
    flat = [p for b in batches for p in b.items]
    assert sorted(p.metric for p in flat) == sorted(p.metric for p in items)
    assert all(1 <= len(b.items) <= size for b in batches)
    assert all(len({p.ds for p in b.items}) == 1 for b in batches)
    for b in batches:  # first come first served inside a batch
        assert list(b.items) == sorted(b.items, key=lambda p: p.waiting_since)
    firsts = [b.items[0].waiting_since for b in batches]
    assert firsts == sorted(firsts)
    longest = max(costs)
    for b in batches:
        # No batch much longer than the target, unless one metric alone is, or first come
        # first served and the size cap leave no other cut (the batch is then full).
        within = b.estimate_seconds <= max(2 * target, longest + target) + 1e-6
        assert within or len(b.items) == size


def run(metric: str, seconds: float, finished: datetime, reason: str | None = None) -> RunInfo:
    return RunInfo(
        1,
        metric,
        "aggregated",
        D2,
        "",
        "done",
        1,
        reason,
        None,
        finished,
        finished,
        finished - timedelta(seconds=seconds),
        finished,
        seconds,
    )


def test_estimates_are_the_median_of_recent_runs_per_metric_share() -> None:
    runs = [
        run("a", 10, T),
        run("a", 12, T + timedelta(days=1)),
        run("a", 500, T + timedelta(days=2)),
        run("b", 100, T, DONE_REASON.format(size=4)),
    ]
    assert estimate_durations(runs) == {"a": 12, "b": 25}
    old_and_new = [run("c", 1000, T + timedelta(days=i)) for i in range(3)] + [
        run("c", 5, T + timedelta(days=10 + i)) for i in range(5)
    ]
    assert estimate_durations(old_and_new, recent=5) == {"c": 5}
