"""The series sink: 15-minute increments → the cumulative series of each group and period.

Why a function: the series is a running sum over buckets that late data can still change
anywhere in the period, rewritten per (experiment, group, period) as a whole; the input is
the upserts of per-bucket counts, not events.

Keyed by (experiment, group, period start); keyed state holds the increments per
(kind, event type, bucket). Flushed like the results sink: every ``flush_ms`` when changed,
and at the end of a bounded input.

Its input is about one record per event type and bucket each time SQL's mini-batches close
(every checkpoint too), hundreds of thousands in a replay, so a record does as little as
it can: it gets upserts (no -U before an update), and which keys
wait for a write is kept in memory, not in keyed state (a state read per record was about a
sixth of the sink's time). Nothing is lost by that on a restore: a restored key counts as
changed until it is written again, and its restored timers write it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from pyflink.common import Row, RowKind
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, TimeDomain
from pyflink.datastream.state import MapStateDescriptor

from streaming.functions.results_sink import END_OF_INPUT
from streaming.jobs.aggregation import SERIES_PREFIX
from streaming.series import SeriesStore, cumulative


class SeriesSink(KeyedProcessFunction):
    def __init__(self, url: str, flush_ms: int):
        self.url = url
        self.flush_ms = flush_ms

    def open(self, runtime_context: Any) -> None:
        self.increments = runtime_context.get_map_state(  # text keys: see results_sink.PROGRESS
            MapStateDescriptor("increments", Types.STRING(), Types.LONG())
        )
        self.timed: set[tuple[str, str, int]] = set()  # keys with a write timer
        self.clean: set[tuple[str, str, int]] = set()  # keys unchanged since written
        self.store = SeriesStore(self.url)

    def close(self) -> None:
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    def process_element(self, value: Row, ctx: Any) -> Iterable[bool]:
        key = json.dumps([value[3], value[4], value[5]])
        if value.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
            self.increments.put(key, value[6])
        else:
            self.increments.remove(key)
        series = (value[0], value[1], value[2])
        self.clean.discard(series)
        if series not in self.timed:
            self.timed.add(series)
            timers = ctx.timer_service()
            timers.register_processing_time_timer(timers.current_processing_time() + self.flush_ms)
            timers.register_event_time_timer(END_OF_INPUT)
        return ()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[bool]:
        experiment, group, period_start = series = tuple(ctx.get_current_key())
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            self.timed.discard(series)
        if series not in self.clean:
            increments = {}
            for k, n in self.increments.items():
                kind, name, bucket = json.loads(k)
                increments[kind.removeprefix(SERIES_PREFIX), name, bucket] = n
            points = cumulative(increments)
            self.store.replace(experiment, group, period_start, points, int(time.time() * 1000))
            self.clean.add(series)
        return ()
