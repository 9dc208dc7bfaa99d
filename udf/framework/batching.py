"""Split the ready metric-days into parallel batches: first come, first served, sized to fit.

Why batches at all: every batch is one ``compute()`` call, i.e. one scan of the archive
shared by its metrics, so fewer batches is less total work; but a batch is also the unit of
parallelism (one Airflow task in the pool) and of retry, so one giant batch is slow and
fragile. The split adapts to what is waiting:

- ``n_time = ceil(work / target_batch_seconds)``: no batch should take much longer than
  the target (work = the sum of each metric's estimated seconds: the median of its recent
  measured durations, a default when it has none);
- ``n_size = ceil(count / max_batch_size)``: a hard cap on metrics per batch;
- ``n_fill = min(pool_slots, count, floor(work / min_batch_seconds))``: when the pool has
  idle slots, spread the work over them, but never into batches so small that the scan
  dominates.

A batch holds one ds (``compute()`` crosses metrics with dates, so mixing days would compute
pairs nobody asked for). Within a day the metric-days keep their first-come order
(oldest waiting first) and are cut into contiguous, load-balanced chunks, and the batches
are ordered by their oldest member, so the longest-waiting work is started first.
This module is pure: no store, no clock.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from metadata.records import RunInfo

RECENT_RUNS = 5
# The reason a computed run is marked done with: it carries the batch size, so a metric's
# share of a shared scan can be estimated from the batch's duration.
DONE_REASON = "computed in a batch of {size} metric(s)"
_DONE = re.compile(r"computed in a batch of (\d+) metric")


@dataclass(frozen=True)
class Pending:
    """One ready metric-day waiting for a batch."""

    metric: str
    ds: date
    waiting_since: datetime
    estimate_seconds: float | None = None


@dataclass(frozen=True)
class Batch:
    ds: date
    items: tuple[Pending, ...]
    estimate_seconds: float

    @property
    def metrics(self) -> list[str]:
        return [p.metric for p in self.items]


def estimate_durations(runs: Iterable[RunInfo], recent: int = RECENT_RUNS) -> dict[str, float]:
    """Each metric's median duration over its ``recent`` newest finished runs.

    The median, not the mean: one run that waited on a busy cluster should not double the
    next estimate. Every metric of a batch records the batch's duration; the batch size in
    its done reason (:data:`DONE_REASON`) turns that into the metric's share of the scan.
    """
    by_metric: dict[str, list[tuple[datetime, float]]] = {}
    for run in runs:
        if run.state == "done" and run.duration_seconds is not None and run.finished_at:
            match = _DONE.search(run.reason or "")
            share = (
                run.duration_seconds / max(int(match.group(1)), 1)
                if match
                else run.duration_seconds
            )
            by_metric.setdefault(run.metric, []).append((run.finished_at, share))
    return {
        metric: statistics.median(d for _, d in sorted(found, reverse=True)[:recent])
        for metric, found in by_metric.items()
    }


def make_batches(
    items: Sequence[Pending],
    *,
    pool_slots: int,
    target_batch_seconds: float,
    max_batch_size: int,
    min_batch_seconds: float = 0.0,
    default_estimate: float = 60.0,
) -> list[Batch]:
    """Cut ``items`` into batches (see the module docstring for the rule)."""
    if pool_slots < 1 or max_batch_size < 1 or target_batch_seconds <= 0:
        raise ValueError("pool_slots, max_batch_size and target_batch_seconds must be positive")
    if not items:
        return []
    ordered = sorted(items, key=lambda p: (p.waiting_since, p.ds, p.metric))

    def cost(p: Pending) -> float:
        return max(p.estimate_seconds if p.estimate_seconds is not None else default_estimate, 0.0)

    groups: dict[date, list[Pending]] = {}
    for p in ordered:  # dicts keep insertion order: days in first-come order
        groups.setdefault(p.ds, []).append(p)
    load = {ds: sum(cost(p) for p in g) for ds, g in groups.items()}
    counts = {
        ds: min(len(g), max(1, math.ceil(load[ds] / target_batch_seconds),
                            math.ceil(len(g) / max_batch_size)))
        for ds, g in groups.items()
    }  # fmt: skip
    total_load = sum(load.values())
    by_floor = len(ordered) if min_batch_seconds <= 0 else int(total_load // min_batch_seconds)
    fill = min(pool_slots, len(ordered), by_floor)
    while sum(counts.values()) < fill:
        # One more batch for the day whose batches are heaviest (and can still be split).
        splittable = [ds for ds, g in groups.items() if counts[ds] < len(g)]
        if not splittable:
            break
        ds = max(splittable, key=lambda d: load[d] / counts[d])
        counts[ds] += 1
    batches = [
        Batch(ds, tuple(chunk), sum(cost(p) for p in chunk))
        for ds, group in groups.items()
        for chunk in _split(group, counts[ds], max_batch_size, cost)
    ]
    position = {id(p): i for i, p in enumerate(ordered)}
    return sorted(batches, key=lambda b: position[id(b.items[0])])


def _split(
    items: list[Pending], k: int, max_size: int, cost: Callable[[Pending], float]
) -> list[list[Pending]]:
    """``k`` contiguous chunks of about equal load, none over ``max_size`` items."""
    chunks: list[list[Pending]] = []
    remaining = sum(cost(p) for p in items)
    i = 0
    for j in range(k):
        left_chunks = k - j
        share = remaining / left_chunks
        chunk: list[Pending] = []
        load = 0.0
        while i < len(items):
            left_items = len(items) - i
            c = cost(items[i])
            must = left_items > (left_chunks - 1) * max_size
            fits = (
                len(chunk) < max_size
                and load + c / 2 <= share
                and left_items - 1 >= left_chunks - 1
            )
            if chunk and not must and not fits:
                break
            chunk.append(items[i])
            load += c
            i += 1
        remaining -= load
        if chunk:
            chunks.append(chunk)
    return chunks
