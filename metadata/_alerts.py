"""Alert states: one row per watched comparison, changed once per change, with its messages.

A look that puts a comparison in a different state (``ok`` -> ``alerting`` or back) is a
*change*: the state row is updated under its row lock, the change is written to
``alert_events`` and the messages announcing it are queued as ``pending`` notifications,
all in one transaction. Two evaluators looking at the same data at once therefore record
one change and queue one set of messages (the second finds the state already changed), a
crash leaves either all of it or none, and a restarted evaluator finds the state where it
was. A look older than the state's latest (an earlier ``day``, or fewer ``units`` on the
same day) is stale and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metadata._base import StoreBase
from metadata.models import (
    ALERT_STATES,
    SEGMENT_VALUE,
    AlertEvent,
    AlertState,
    Experiment,
    ExperimentGroup,
    MetricDefinition,
    Notification,
)
from metadata.records import AlertChange, AlertKey, AlertLook, AlertStateInfo, Findings, Outgoing
from udf.errors import MetadataError

log = logging.getLogger(__name__)

Compose = Callable[[AlertChange], Sequence[Outgoing]]
_FOUND = ("day", "units", "method", "alpha", "moved", "p_value", "lift_abs", "lift_rel",
          "ci_low", "ci_high")  # fmt: skip
_Ids = tuple[int, int, int, str, str]  # group_id, metric_id, period_start, segment, value


class AlertsMixin(StoreBase):
    def record_alert_looks(
        self, looks: Sequence[AlertLook], compose: Compose = lambda change: ()
    ) -> list[AlertChange]:
        """Record the looks; return the changes of state they made, each with its messages
        (``compose(change)``, called inside the transaction, so it must not send anything)
        queued as ``pending`` notifications.

        Looks at unknown experiments, groups or metrics, or at segment values longer than
        the table keeps, are skipped (and logged).
        """
        for look in looks:
            if look.state is not None and look.state not in ALERT_STATES:
                raise MetadataError(f"unknown alert state {look.state!r}")
        latest: dict[AlertKey, AlertLook] = {}
        for look in looks:  # one look per key: the newest
            seen = latest.get(look.key)
            if seen is None or _order(look.found) >= _order(seen.found):
                latest[look.key] = look
        if not latest:
            return []
        ordered = [latest[k] for k in sorted(latest)]  # one lock order for every evaluator
        return self._retrying(
            lambda s: self._record_looks(s, ordered, compose),
            "cannot record the alert looks",
            duplicates_are_races=True,
        )

    def _record_looks(
        self, s: Session, looks: list[AlertLook], compose: Compose
    ) -> list[AlertChange]:
        now = self._clock()
        ids = _resolve(s, looks)
        known = [look for look in looks if look.key in ids]
        # A plain read finds existing rows (no FOR UPDATE of missing rows: on MariaDB that
        # takes gap locks and concurrent inserters deadlock); missing ones are inserted (the
        # unique key lets one concurrent inserter win, the others go again and find it).
        rows = _existing(s, [ids[look.key] for look in known])
        for look in known:
            if ids[look.key] not in rows:
                s.add(_new_state(ids[look.key], look.found, now))
        s.flush()
        rows = _existing(s, [ids[look.key] for look in known], lock=True)
        changes = []
        for look in known:
            row = rows[ids[look.key]]
            if _order(look.found) < (row.day, row.units):
                continue  # stale: an older look than the one recorded
            _set_found(row, look.found)
            row.looks += 1
            row.updated_at = now
            if look.state is None or look.state == row.state:
                continue
            event = AlertEvent(state_id=row.id, from_state=row.state, to_state=look.state, at=now,
                               **_found_values(look.found))  # fmt: skip
            row.state, row.changes, row.changed_at = look.state, row.changes + 1, now
            s.add(event)
            s.flush()
            change = AlertChange(event.id, look.key, event.from_state, look.state, now, look.found)
            for out in compose(change):
                s.add(
                    Notification(
                        recipient=out.recipient, kind=out.kind, subject=out.subject[:500],
                        body=out.body, run_ids=[], state="pending", attempts=0, created_at=now,
                        alert_event_id=event.id,
                    )
                )  # fmt: skip
            changes.append(change)
        s.flush()
        return changes

    def alert_states(
        self, *, experiment: str | None = None, state: str | None = None
    ) -> list[AlertStateInfo]:
        """Every recorded alert state (or an experiment's, or those in ``state``)."""
        query = _named(select(AlertState))
        if experiment is not None:
            query = query.where(Experiment.name == experiment)
        if state is not None:
            query = query.where(AlertState.state == state)
        with self._tx() as s:
            return [
                AlertStateInfo(
                    _key(exp, group, metric, row),
                    row.state,
                    row.changes,
                    row.looks,
                    _findings(row),
                    row.changed_at,
                    row.updated_at,
                )
                for row, exp, group, metric in s.execute(query)
            ]

    def alert_changes(self, *, experiment: str | None = None) -> list[AlertChange]:
        """Every change of alert state, oldest first."""
        query = _named(
            select(AlertEvent, AlertState)
            .select_from(AlertEvent)
            .join(AlertState, AlertEvent.state_id == AlertState.id)
        )
        if experiment is not None:
            query = query.where(Experiment.name == experiment)
        with self._tx() as s:
            return [
                AlertChange(
                    event.id,
                    _key(exp, group, metric, row),
                    event.from_state,
                    event.to_state,
                    event.at,
                    _findings(event),
                )
                for event, row, exp, group, metric in s.execute(query.order_by(AlertEvent.id))
            ]


def _named(query: Any) -> Any:
    """``query`` joined to the names of its state's experiment, group and metric."""
    return (
        query.add_columns(Experiment.name, ExperimentGroup.name, MetricDefinition.name)
        .join(ExperimentGroup, AlertState.group_id == ExperimentGroup.id)
        .join(Experiment, ExperimentGroup.experiment_id == Experiment.id)
        .join(MetricDefinition, AlertState.metric_id == MetricDefinition.id)
        .order_by(Experiment.name, ExperimentGroup.name, MetricDefinition.name,
                  AlertState.period_start, AlertState.segment, AlertState.segment_value)
    )  # fmt: skip


def _order(found: Findings) -> tuple[object, int]:
    return (found.day, found.units)


def _resolve(s: Session, looks: list[AlertLook]) -> dict[AlertKey, _Ids]:
    experiments = sorted({look.key.experiment for look in looks})
    groups = {
        (exp, name): gid
        for gid, exp, name in s.execute(
            select(ExperimentGroup.id, Experiment.name, ExperimentGroup.name)
            .join(Experiment)
            .where(Experiment.name.in_(experiments))
        )
    }
    names = sorted({look.key.metric for look in looks})
    metrics = {
        name: mid
        for name, mid in s.execute(
            select(MetricDefinition.name, MetricDefinition.id).where(
                MetricDefinition.name.in_(names)
            )
        )
    }
    ids: dict[AlertKey, _Ids] = {}
    for look in looks:
        k = look.key
        gid, mid = groups.get((k.experiment, k.group)), metrics.get(k.metric)
        if gid is None or mid is None:
            log.warning("alert look at unknown experiment, group or metric %s: skipped", k)
            continue
        if len(k.segment_value) > SEGMENT_VALUE:
            log.warning("alert look at a segment value over %d characters: skipped", SEGMENT_VALUE)
            continue
        ids[k] = (gid, mid, k.period_start, k.segment, k.segment_value)
    return ids


def _existing(s: Session, wanted: list[_Ids], lock: bool = False) -> dict[_Ids, AlertState]:
    if not wanted:
        return {}
    groups = sorted({w[0] for w in wanted})
    query = select(AlertState).where(AlertState.group_id.in_(groups))
    found = {
        (r.group_id, r.metric_id, r.period_start, r.segment, r.segment_value): r
        for r in s.scalars(query)
    }
    rows = {w: found[w] for w in wanted if w in found}
    if lock and rows:
        # Lock by primary key, in id order (one order for every evaluator: no deadlock).
        ids = sorted(r.id for r in rows.values())
        locked = {r.id: r for r in s.scalars(
            select(AlertState).where(AlertState.id.in_(ids)).order_by(AlertState.id)
            .with_for_update().execution_options(populate_existing=True)
        )}  # fmt: skip
        rows = {w: locked[r.id] for w, r in rows.items()}
    return rows


def _new_state(ids: _Ids, found: Findings, now: datetime) -> AlertState:
    gid, mid, period_start, segment, value = ids
    return AlertState(
        group_id=gid, metric_id=mid, period_start=period_start, segment=segment,
        segment_value=value, state="ok", changes=0, looks=0, status=found.status,
        created_at=now, updated_at=now, changed_at=None, **_found_values(found),
    )  # fmt: skip


def _found_values(found: Findings) -> dict[str, object]:
    return {name: getattr(found, name) for name in _FOUND}


def _set_found(row: AlertState, found: Findings) -> None:
    for name, value in _found_values(found).items():
        setattr(row, name, value)
    row.status = found.status


def _findings(row: AlertState | AlertEvent) -> Findings:
    status = row.status if isinstance(row, AlertState) else ""
    return Findings(**{name: getattr(row, name) for name in _FOUND}, status=status)  # type: ignore[arg-type]


def _key(experiment: str, group: str, metric: str, row: AlertState) -> AlertKey:
    return AlertKey(experiment, group, metric, row.period_start, row.segment, row.segment_value)
