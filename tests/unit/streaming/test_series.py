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


def test_a_bucket_whose_count_was_added_and_taken_back_makes_no_point() -> None:
    """A user's first trigger moved by a late activation (exposed +1 then -1 in bucket 10) and
    a displaced event (volume and propensity back to 0 in bucket 11) leave zero increments,
    present or not depending on arrival order: the points are the same either way."""
    settled = {("exposed", "", 12): 1, ("volume", "click", 12): 2, ("propensity", "click", 12): 1}
    with_zeros = {
        **settled, ("exposed", "", 10): 0, ("volume", "click", 11): 0,
        ("propensity", "click", 11): 0, ("volume", "search", 11): 0,
    }  # fmt: skip
    expected = [SeriesPoint("click", 12 * BUCKET_MS, 1, 2, 1)]
    assert cumulative(settled) == expected
    assert cumulative(with_zeros) == expected
