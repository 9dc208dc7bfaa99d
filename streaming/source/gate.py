"""The gate every record of a topic passes: a per-subtask rate limit and two Flink metrics.

A Python scalar function, so it costs a Python call per record (thread mode: tens of
thousands per second); the source registers it only when a topic has a rate limit or
``stream.source.metrics`` is on. Pacing is absolute (record ``n`` leaves no earlier than
``n / rate`` seconds after the first), so short stalls are made up without bursts above
the limit over any longer span.
"""

from __future__ import annotations

import time
from typing import Any

from pyflink.table.udf import FunctionContext, ScalarFunction


class Gate(ScalarFunction):  # type: ignore[misc]
    def __init__(self, topic: str, rate: float | None):
        self.topic = topic
        self.rate = rate  # records/s of this subtask; None: no limit
        self._n = 0
        self._t0 = 0.0

    def open(self, function_context: FunctionContext) -> None:
        group = function_context.get_metric_group().add_group("udf_source").add_group(self.topic)
        self.records: Any = group.counter("records")
        self.unreadable: Any = group.counter("unreadable")

    def eval(self, line: str | None, ts: int | None) -> str | None:
        self.records.inc()
        if ts is None:
            self.unreadable.inc()
        if self.rate is not None:
            if self._n == 0:
                self._t0 = time.monotonic()
            due = self._t0 + self._n / self.rate
            self._n += 1
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        return line
