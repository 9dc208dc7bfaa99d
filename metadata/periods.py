"""Aggregation periods from a group's ramp history (the contract §3), with no I/O.

The first ramp at ``r`` opens a period ``[r, r + W)``. A later ramp before the period's
end extends the end to ``r2 + W``; a ramp at or after the end opens a new period at ``r2``
whose counts start from zero. Batch, streaming and the CLI share this one function, so the
engines cannot disagree about where a period starts or ends.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from udf.vocabulary import DEFAULT_WINDOW_DAYS

DAY_MS = 86_400_000
# The window W the platform accepts, in days: from one hour (the archive's grain) to ten years.
MIN_WINDOW_DAYS, MAX_WINDOW_DAYS = 1 / 24, 3650


def window_ms(days: float = DEFAULT_WINDOW_DAYS) -> int:
    """The aggregation window ``W`` in epoch milliseconds (``ValueError`` outside the range)."""
    if not (math.isfinite(days) and MIN_WINDOW_DAYS <= days <= MAX_WINDOW_DAYS):
        raise ValueError(
            f"the aggregation window must be from 1 hour ({MIN_WINDOW_DAYS:.6g} days) to "
            f"{MAX_WINDOW_DAYS} days, not {days} days"
        )
    return round(days * DAY_MS)


@dataclass(frozen=True, order=True)
class Period:
    """``[start, end)`` in epoch ms; ``ramps`` are the ramp timestamps that shaped it."""

    start: int
    end: int
    ramps: tuple[int, ...]

    def contains(self, ts: int) -> bool:
        return self.start <= ts < self.end


def aggregation_periods(ramp_ts: Iterable[int], window: int) -> list[Period]:
    """The periods implied by ``ramp_ts`` (any order, duplicates ignored) and window ``window`` ms."""
    if window <= 0:
        raise ValueError(f"the aggregation window must be positive, not {window} ms")
    periods: list[Period] = []
    start = end = 0
    members: list[int] = []
    for ts in sorted(set(ramp_ts)):
        if members and ts < end:
            end = ts + window
            members.append(ts)
            continue
        if members:
            periods.append(Period(start, end, tuple(members)))
        start, end, members = ts, ts + window, [ts]
    if members:
        periods.append(Period(start, end, tuple(members)))
    return periods


def period_at(periods: Sequence[Period], ts: int) -> Period | None:
    """The period containing ``ts``, or ``None`` (before the launch or between periods).

    ``periods`` must be sorted and disjoint, as :func:`aggregation_periods` returns them.
    """
    index = bisect_right([p.start for p in periods], ts) - 1
    if index >= 0 and periods[index].contains(ts):
        return periods[index]
    return None
