"""The results sink: group totals → stream rows with comparisons, written every few seconds.

Why a function and not SQL: the comparison columns come from the ``stats`` package (Python),
and one experiment's rows of a date are compared and corrected together (docs/metrics.md
§8). Its input is small: the aggregation's changelog after mini-batching, not events.

Keyed by (experiment, day). Keyed state holds the latest group totals of the key (a -U/-D
removes one, a +I/+U sets it). A key with changes is flushed by a processing-time timer
every ``flush_ms``, and every key once more at the end of a bounded input (an event-time
timer at the end of time fires only then). A flush builds the key's rows
(:func:`streaming.rows.result_rows`), adds the health checks (:mod:`streaming.health`),
compares them (:func:`results.comparisons.compare_groups`)
and *replaces* the key's slice in the results store in one transaction: idempotent, so a
restart from a checkpoint rewrites, never adds; and rows that stopped existing (a segment
value nobody has any more) disappear.

The broadcast side carries the pipeline's progress: records and corrupt lines per topic,
the latest event time (a day is written once the data reached it: no rows for days that
have not happened yet) and the event types seen (each is a default metric). It also writes
the progress file the command line prints.

Comparisons: the experiment's analysis settings, with its sequential method for a
real-time look (:func:`streaming.alerts.rules.realtime_method`: the experiment's own, else
the always-valid mSPRT). Alerts: each write is a look, judged by
:class:`streaming.alerts.stream.StreamAlerts` (experiments with a watched metric only), with
the write's real-time health verdicts (:meth:`streaming.health.HealthChecks.realtime`).
Another hook, ``on_rows`` (a ``module:function`` name), is called with the experiment, the
date and the compared rows after each write.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pyflink.common import Row, RowKind
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedBroadcastProcessFunction, TimeDomain
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from streaming.health import HealthChecks
from streaming.plan import METRIC_TYPE, StreamPlan
from streaming.rows import day_of, result_rows
from udf.home import Home

END_OF_INPUT = 2**63 - 2  # fires only when a bounded input ends (the final watermark)
DAY_MS = 86_400_000
# State keys are text: a pickled key is a Java byte[], which a heap map (broadcast state is
# one) compares by identity, so a put would add an entry instead of replacing it.
PROGRESS = MapStateDescriptor("progress", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
RowsHook = Callable[[str, str, Sequence[Any]], None]


class ResultsSink(KeyedBroadcastProcessFunction):
    def __init__(
        self,
        home: Home,
        settings: Any,
        plan: StreamPlan,
        flush_ms: int,
        progress_dir: str,
        on_rows: str | None = None,
    ):
        self.home = home  # with the submitter's metadata store (PipelineConfig.home)
        self.settings = settings
        self.plan = plan
        self.flush_ms = flush_ms
        self.progress_dir = progress_dir
        self.on_rows = on_rows

    def open(self, runtime_context: Any) -> None:
        from results.stores import open_store

        pickled = Types.PICKLED_BYTE_ARRAY()
        self.totals = runtime_context.get_map_state(
            MapStateDescriptor("totals", Types.STRING(), pickled)
        )
        self.dirty = runtime_context.get_state(ValueStateDescriptor("dirty", Types.BOOLEAN()))
        self.written = runtime_context.get_state(ValueStateDescriptor("written", pickled))
        self.store = open_store(self.home, self.settings)
        srm_alpha = {e: spec.srm_alpha for e, spec in self.plan.specs.items()}
        # a new ramp reaches the pipeline's periods within one republish and one look for new
        # files; twice that, for the activations the join re-sends to settle
        stream = self.settings.stream
        settle = 2 * (stream.periods_interval_seconds + stream.monitor_seconds)
        self.health = HealthChecks(self.home, self.settings.window_ms, srm_alpha, settle)
        self.subtask = _subtask(runtime_context)
        self.rows_written = 0
        self.last_progress = 0.0
        self.reported_rows = -1  # rows_written in the last report
        self.registered: set[str] = set()
        from streaming.alerts.rules import realtime_analysis
        from streaming.alerts.stream import StreamAlerts

        self.analysis = realtime_analysis(self.plan.analysis)
        self.alerts = StreamAlerts(self.home, self.settings.alerts)
        self.hook: RowsHook | None = None
        if self.on_rows:
            module, _, name = self.on_rows.partition(":")
            self.hook = getattr(importlib.import_module(module), name)

    def close(self) -> None:
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    # -- the totals ---------------------------------------------------------------------------

    def process_element(self, value: Row, ctx: Any) -> Iterable[bool]:
        key = json.dumps([value[1], value[2], value[3], value[5], value[6], value[7], value[8]])
        if value.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
            self.totals.put(key, tuple(value[9:15]))
        else:
            self.totals.remove(key)
        timers = ctx.timer_service()
        if not self.dirty.value():
            self.dirty.update(True)
            timers.register_processing_time_timer(timers.current_processing_time() + self.flush_ms)
        timers.register_event_time_timer(END_OF_INPUT)
        return ()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[bool]:
        self._flush(ctx, final=ctx.time_domain() == TimeDomain.EVENT_TIME)
        return ()

    def _flush(self, ctx: Any, final: bool) -> None:
        experiment, d = ctx.get_current_key()
        progress = _progress(ctx.get_broadcast_state(PROGRESS))
        clock = max((v[2] for k, v in progress.items() if k[0] == "topic" and v[2] is not None),
                    default=None)  # fmt: skip
        types = sorted(k[1] for k in progress if k[0] == "event_type")
        if clock is None or d > clock // DAY_MS:  # that day has not started in the data yet
            if not final:
                timers = ctx.timer_service()
                timers.register_processing_time_timer(
                    timers.current_processing_time() + self.flush_ms
                )
            return
        if self.dirty.value() or self.written.value() != types:
            self._write(experiment, d, types)
            self.dirty.clear()
            self.written.update(types)
        elif not final:
            return
        # at most twice a second, and at the end of the input whenever the count is not
        # reported yet (the last writes may come before it, their reports held back)
        if time.monotonic() - self.last_progress >= 0.5 or (
            final and self.rows_written != self.reported_rows
        ):
            self.last_progress = time.monotonic()
            self._report(progress)

    def _write(self, experiment: str, d: int, types: list[str]) -> None:
        from results.comparisons import compare_groups
        from results.schema import Slice

        metrics = self.plan.metrics_of(experiment, types)
        if not metrics:
            return
        self._register(set(self.plan.defaults) - self.registered)
        computed_at = int(time.time() * 1000)
        totals = {tuple(json.loads(k)): v for k, v in self.totals.items()}
        rows = result_rows(experiment, d, totals, self.plan, metrics, computed_at)
        rows = self.health.rows(experiment, d, totals, rows)
        rows = compare_groups(rows, self.plan.controls, self.analysis)
        names = tuple(sorted({m.name for m in metrics}))
        day = day_of(d)
        self.rows_written += self.store.replace(
            Slice("stream", METRIC_TYPE, day, names, (experiment,)), rows
        )
        health = self.health.realtime(experiment, totals, rows)
        self.alerts.look(experiment, day.isoformat(), rows, health)
        if self.hook is not None:
            self.hook(experiment, day.isoformat(), rows)

    def _register(self, event_types: set[str]) -> None:
        """Register new event types as default metrics in the catalog, as batch does."""
        if not event_types:
            return
        from metadata.repository import MetadataStore

        with MetadataStore.for_home(self.home) as store:
            store.register_default_metrics(sorted(event_types))
        self.registered |= event_types

    # -- progress -----------------------------------------------------------------------------

    def process_broadcast_element(self, value: Row, ctx: Any) -> Iterable[bool]:
        state = ctx.get_broadcast_state(PROGRESS)
        key = f"{value[0]}/{value[1]}"
        if value.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
            state.put(key, (value[2], value[3], value[4]))
        else:
            state.remove(key)
        self._report(_progress(state))  # a few per second: one per topic and mini-batch
        return ()

    def _report(self, progress: dict[tuple[str, str], tuple[Any, ...]]) -> None:
        topics = {
            name: {"records": v[0], "corrupt": v[1], "max_ts": v[2]}
            for (kind, name), v in progress.items() if kind == "topic"
        }  # fmt: skip
        self.reported_rows = self.rows_written
        report = {
            "topics": topics,
            "event_types": sorted(name for kind, name in progress if kind == "event_type"),
            "rows_written": self.rows_written,
            "at": int(time.time() * 1000),
        }
        folder = Path(self.progress_dir)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"sink-{self.subtask}.json"
        tmp = folder / f".{target.name}.tmp"
        tmp.write_text(json.dumps(report))
        os.replace(tmp, target)


def _progress(state: Any) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The broadcast progress as ``(what, name) -> numbers``."""
    return {tuple(k.split("/", 1)): v for k, v in state.items()}  # type: ignore[misc]


def _subtask(runtime_context: Any) -> int:
    """This subtask's index (thread mode's context has no ``getIndexOfThisSubtask``)."""
    try:
        return int(runtime_context.get_index_of_this_subtask())
    except Exception:
        try:
            return int(runtime_context.get_task_info().get_index_of_this_subtask())
        except Exception:
            return 0
