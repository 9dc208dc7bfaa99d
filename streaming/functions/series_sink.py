"""The series sink: a series' per-bucket counts → its cumulative points, written.

Why a function: the series is a running sum over buckets that late data can still change
anywhere in the period, rewritten per (experiment, group, period) as a whole.

Its input is one record per write, made in the JVM (``SeriesIncrements.java``): the counts of
one series, gathered from the upserts of SQL's per-bucket sums and passed on
``series_flush_seconds`` after the series' first change, and when a bounded input ends.
Those upserts are about one per event type and bucket each time SQL's mini-batches close,
hundreds of thousands in a replay; in Python each cost a crossing into the interpreter and
a state write (docs/benchmarks.md, "2026-12-05 (last)"). The sink keeps no state: a write
replaces the series whole, so a write repeated after a restore changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from pyflink.common import Row
from pyflink.datastream import ProcessFunction

from streaming.jobs.aggregation import SERIES_PREFIX
from streaming.series import SeriesStore, cumulative


class SeriesSink(ProcessFunction):
    def __init__(self, url: str):
        self.url = url

    def open(self, runtime_context: Any) -> None:
        self.store = SeriesStore(self.url)

    def close(self) -> None:
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    def process_element(self, value: Row, ctx: Any) -> Iterable[bool]:
        experiment, group, period_start, kinds, names, buckets, counts = value
        increments = {
            (kind.removeprefix(SERIES_PREFIX), name, bucket): n
            for kind, name, bucket, n in zip(kinds, names, buckets, counts, strict=True)
        }
        self.store.replace(experiment, group, period_start, cumulative(increments),
                           int(time.time() * 1000))  # fmt: skip
        return ()
