"""Run lifecycle: one row per (metric, ds, scope) with its state, and the history of changes.

States (the contract §5 ``udf status``): waiting_on_source, queued, in_progress, done, failed,
skipped, backfill_queued. Every change is an event row, so ``udf status`` can show why a
metric is late and the framework can find what to backfill.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from metadata._base import StoreBase
from metadata.models import MetricDefinition, MetricRun, MetricRunEvent
from metadata.records import RunEvent, RunInfo
from udf.errors import MetadataError
from udf.vocabulary import RUN_STATES

FINISHED_STATES = frozenset({"done", "failed"})


class RunsMixin(StoreBase):
    def set_run_state(
        self,
        metric: str,
        ds: date,
        state: str,
        reason: str | None = None,
        scope: str = "",
        *,
        dag_run_id: str | None = None,
    ) -> RunInfo:
        """Move a metric-day's run to ``state`` (creating it), recording the change as an event.

        Entering ``in_progress`` starts a new attempt; entering ``done`` or ``failed`` sets the
        finish time and duration. Repeating the current state with the same reason is a no-op.
        """
        if state not in RUN_STATES:
            raise MetadataError(
                f"unknown run state {state!r}; expected one of {', '.join(RUN_STATES)}"
            )
        ds = _as_date(ds)
        what = f"cannot record the run of {metric} {ds}"
        # A duplicate key means another caller created the run first: go again, and the
        # next attempt finds the row and updates it under its row lock.
        return self._retrying(
            lambda s: self._set_run_state(s, metric, ds, state, reason, scope, dag_run_id),
            what,
            duplicates_are_races=True,
        )

    def _set_run_state(
        self,
        s: Session,
        metric: str,
        ds: date,
        state: str,
        reason: str | None,
        scope: str,
        dag_run_id: str | None,
    ) -> RunInfo:
        definition = s.scalar(select(MetricDefinition).where(MetricDefinition.name == metric))
        if definition is None:
            raise MetadataError(f"unknown metric {metric!r}: sync the catalog first")
        # Never SELECT ... FOR UPDATE a row that may be missing: on MySQL/MariaDB that takes
        # a gap lock, and two callers creating the same run then deadlock on their inserts.
        # A plain read decides; a missing run is inserted (the unique key lets one creator
        # commit, the others retry and find it); an existing one is locked by primary key.
        run_id = s.scalar(
            select(MetricRun.id).where(
                MetricRun.metric_id == definition.id, MetricRun.ds == ds, MetricRun.scope == scope
            )
        )
        run = None
        if run_id is not None:
            run = s.scalar(select(MetricRun).where(MetricRun.id == run_id).with_for_update())
        now = self._clock()
        previous = None if run is None else run.state
        if run is None:
            run = MetricRun(
                metric_id=definition.id, metric_type=definition.metric_type, ds=ds, scope=scope,
                state=state, attempt=0, created_at=now,
            )  # fmt: skip
            s.add(run)
            s.flush()
        elif previous == state and run.reason == reason and dag_run_id in (None, run.dag_run_id):
            return _run_info(run, definition.name)
        run.state, run.reason, run.updated_at = state, reason, now
        if dag_run_id is not None:
            run.dag_run_id = dag_run_id
        if state == "in_progress":
            run.attempt += 1
            run.started_at, run.finished_at, run.duration_seconds = now, None, None
        elif state in FINISHED_STATES:
            run.finished_at = now
            if run.started_at is not None:
                run.duration_seconds = (now - run.started_at).total_seconds()
        s.add(
            MetricRunEvent(
                run_id=run.id, from_state=previous, to_state=state, reason=reason, at=now
            )
        )
        s.flush()
        return _run_info(run, definition.name)

    def runs(
        self,
        *,
        metric: str | None = None,
        states: Iterable[str] | None = None,
        ds_from: date | None = None,
        ds_to: date | None = None,
        scope: str | None = None,
        with_events: bool = False,
    ) -> list[RunInfo]:
        """Runs matching every filter given (``ds_from``/``ds_to`` inclusive), by ds then metric."""
        query = (
            select(MetricRun, MetricDefinition.name)
            .join(MetricDefinition, MetricRun.metric_id == MetricDefinition.id)
            .order_by(MetricRun.ds, MetricDefinition.name, MetricRun.scope)
        )
        if metric is not None:
            query = query.where(MetricDefinition.name == metric)
        if states is not None:
            query = query.where(MetricRun.state.in_(list(states)))
        if ds_from is not None:
            query = query.where(MetricRun.ds >= _as_date(ds_from))
        if ds_to is not None:
            query = query.where(MetricRun.ds <= _as_date(ds_to))
        if scope is not None:
            query = query.where(MetricRun.scope == scope)
        with self._tx() as s:
            found = [(run, name) for run, name in s.execute(query)]
            events: dict[int, list[RunEvent]] = {}
            if with_events and found:
                for e in s.scalars(
                    select(MetricRunEvent)
                    .where(MetricRunEvent.run_id.in_([r.id for r, _ in found]))
                    .order_by(MetricRunEvent.id)
                ):
                    events.setdefault(e.run_id, []).append(
                        RunEvent(e.from_state, e.to_state, e.reason, e.at)
                    )
            return [_run_info(r, name, tuple(events.get(r.id, ()))) for r, name in found]

    def run(self, metric: str, ds: date, scope: str = "") -> RunInfo | None:
        """One run with its full event history, or ``None``."""
        found = self.runs(metric=metric, ds_from=ds, ds_to=ds, scope=scope, with_events=True)
        return found[0] if found else None


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise MetadataError(f"not a date: {value!r}") from None


def _run_info(r: MetricRun, metric: str, events: tuple[RunEvent, ...] = ()) -> RunInfo:
    return RunInfo(
        r.id, metric, r.metric_type, r.ds, r.scope, r.state, r.attempt, r.reason, r.dag_run_id,
        r.created_at, r.updated_at, r.started_at, r.finished_at, r.duration_seconds, events,
    )  # fmt: skip
