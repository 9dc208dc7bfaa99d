"""The series sink: 15-minute increments → the cumulative series of each group and period.

Why a function: the series is a running sum over buckets that late data can still change
anywhere in the period, rewritten per (experiment, group, period) as a whole; the input is
the small changelog of per-bucket counts, not events.

Keyed by (experiment, group, period start); keyed state holds the increments per
(kind, event type, bucket). Flushed like the results sink: every ``flush_ms`` when changed,
and at the end of a bounded input.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from pyflink.common import Row, RowKind
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from streaming.functions.results_sink import END_OF_INPUT
from streaming.series import SeriesStore, cumulative


class SeriesSink(KeyedProcessFunction):
    def __init__(self, url: str, flush_ms: int):
        self.url = url
        self.flush_ms = flush_ms

    def open(self, runtime_context: Any) -> None:
        self.increments = runtime_context.get_map_state(  # text keys: see results_sink.PROGRESS
            MapStateDescriptor("increments", Types.STRING(), Types.LONG())
        )
        self.dirty = runtime_context.get_state(ValueStateDescriptor("dirty", Types.BOOLEAN()))
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
        timers = ctx.timer_service()
        if not self.dirty.value():
            self.dirty.update(True)
            timers.register_processing_time_timer(timers.current_processing_time() + self.flush_ms)
        timers.register_event_time_timer(END_OF_INPUT)
        return ()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[bool]:
        if self.dirty.value():
            experiment, group, period_start = ctx.get_current_key()
            increments = {tuple(json.loads(k)): n for k, n in self.increments.items()}
            points = cumulative(increments)  # type: ignore[arg-type]
            self.store.replace(experiment, group, period_start, points, int(time.time() * 1000))
            self.dirty.clear()
        return ()
