"""The 15-minute series: increments per bucket become cumulative points."""

from __future__ import annotations

from streaming.series import BUCKET_MS, SeriesPoint, cumulative


def test_points_accumulate_per_event_type_with_the_shared_exposures() -> None:
    increments = {
        ("exposed", "", 10): 2, ("exposed", "", 12): 1,
        ("volume", "click", 10): 3, ("propensity", "click", 10): 2,
        ("volume", "click", 11): 1,
        ("volume", "search", 12): 4, ("propensity", "search", 12): 1,
    }  # fmt: skip
    assert cumulative(increments) == [
        SeriesPoint("click", 10 * BUCKET_MS, 2, 3, 2),
        SeriesPoint("click", 11 * BUCKET_MS, 2, 4, 2),
        SeriesPoint("click", 12 * BUCKET_MS, 3, 4, 2),
        SeriesPoint("search", 10 * BUCKET_MS, 2, 0, 0),
        SeriesPoint("search", 12 * BUCKET_MS, 3, 4, 1),
    ]
    assert cumulative({("exposed", "", 1): 5}) == []  # no event type yet: nothing to plot
