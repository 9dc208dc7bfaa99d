"""Plan one run of a pipeline: what to compute now, in which batches, and why not the rest.

Every run of a metric type's DAG (scheduled, backfilled or in-process) starts here. For the
run's ds and the ``backfill_days`` before it, each metric-day of the type ends up in exactly
one of these outcomes, recorded in the metadata store with a reason (``udf status``):

- ``done`` already (and no recompute asked): left alone;
- leased by a worker right now: left alone (the in-progress list; no duplicate computation);
- inputs ready: ``queued`` (the run's own ds) or ``backfill_queued`` (an earlier day that was
  missing, waiting, failed or skipped) and put in a batch;
- inputs not ready: ``waiting_on_source`` with what it waits for;
- nothing to compute (no experiment selects the metric, or none selecting it has started):
  ``not_selected`` with why; no batch, no email, checked again by the next run.

No day before the pipeline's ``start_date`` is ever planned, nor, for a run that asks for
a range (a backfill's ``from_date``/``to_date``), a day outside it.

Metric-days older than the window that never finished become ``skipped`` (their owners
are told by :mod:`.notify`), and ``in_progress`` runs whose worker died (lease expired)
are requeued first. The result is a JSON-serialisable list of batches, one per parallel
compute task (Airflow maps a task over it), each ``{"metric_type", "ds", "metrics",
"scope", ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from metadata.records import MetricInfo, RunInfo
from metadata.repository import MetadataStore
from udf.archive.seal import datetime_to_ms
from udf.errors import InputError
from udf.framework.batching import Pending, estimate_durations, make_batches
from udf.framework.leases import lease_key, recover_lost_work
from udf.framework.readiness import Readiness, check_pairs, slice_end
from udf.framework.spec import PipelineSpec
from udf.home import Home
from udf.names import is_name

log = logging.getLogger(__name__)

# States a metric-day can leave only by being computed (or skipped past the window).
UNFINISHED = ("waiting_on_source", "queued", "backfill_queued", "failed")
# How far back measured durations are read for the batch-size estimates.
DURATION_LOOKBACK_DAYS = 30
# How far before the window gaps (days never planned) are looked for.
GAP_LOOKBACK_DAYS = 30


@dataclass(frozen=True)
class RunConf:
    """What a triggered run may ask for (Airflow's ``dag_run.conf``, ``udf backfill``).

    ``scope``: an experiment name for an on-demand run of that experiment alone ("" = all);
    ``metrics``: restrict the run to these metrics of the type; ``force``: recompute the
    run's ds even where it is done (a requested backfill), never the look-back days;
    ``requested_at``: with ``force``, recompute only what finished before this instant, so
    the several runs a backfill creates per day (sub-daily schedules) recompute it once;
    ``from_date``/``to_date``: the range a backfill asked for: its runs plan no day outside
    it (with a sub-daily schedule the first runs of ``from_date`` would plan the day before).
    """

    scope: str = ""
    metrics: tuple[str, ...] | None = None
    force: bool = False
    requested_at: datetime | None = None
    from_date: date | None = None
    to_date: date | None = None

    def as_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"scope": self.scope, "force": self.force}
        if self.metrics is not None:
            conf["metrics"] = list(self.metrics)
        if self.requested_at is not None:
            conf["requested_at"] = self.requested_at.isoformat()
        for key in ("from_date", "to_date"):
            if getattr(self, key) is not None:
                conf[key] = getattr(self, key).isoformat()
        return conf

    def plan_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`plan_run`."""
        return {
            "scope": self.scope,
            "metrics": list(self.metrics) if self.metrics is not None else None,
            "force": self.force,
            "requested_at": self.requested_at,
            "from_date": self.from_date,
            "to_date": self.to_date,
        }


CONF_KEYS = tuple(f.name for f in fields(RunConf))


def parse_run_conf(conf: Mapping[str, Any] | None) -> RunConf:
    """Validate a run's conf; anything unknown or mistyped is refused, not ignored."""
    conf = dict(conf or {})
    unknown = sorted(set(conf) - set(CONF_KEYS))
    if unknown:
        raise InputError(f"unknown run conf key(s): {', '.join(unknown)}")
    scope = conf.get("scope") or ""
    if not isinstance(scope, str) or (scope and not is_name(scope)):
        raise InputError(f"run conf 'scope' must be an experiment name, not {scope!r}")
    metrics = conf.get("metrics")
    if metrics is not None and (
        not isinstance(metrics, list | tuple) or not all(isinstance(m, str) for m in metrics)
    ):
        raise InputError("run conf 'metrics' must be a list of metric names")
    force = conf.get("force", False)
    if not isinstance(force, bool):
        raise InputError("run conf 'force' must be true or false")
    requested_at = conf.get("requested_at")
    if requested_at is not None:
        try:
            requested_at = datetime.fromisoformat(str(requested_at))
        except ValueError:
            raise InputError(
                f"run conf 'requested_at' is not an ISO time: {requested_at!r}"
            ) from None
        if requested_at.tzinfo is None:
            requested_at = requested_at.replace(tzinfo=UTC)
    bounds = [_conf_date(conf, key) for key in ("from_date", "to_date")]
    if bounds[0] and bounds[1] and bounds[1] < bounds[0]:
        raise InputError(f"run conf 'to_date' {bounds[1]} is before 'from_date' {bounds[0]}")
    return RunConf(
        scope, tuple(metrics) if metrics is not None else None, force, requested_at, *bounds
    )


def _conf_date(conf: Mapping[str, Any], key: str) -> date | None:
    value = conf.get(key)
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"run conf {key!r} is not a date (YYYY-MM-DD): {value!r}") from None


def plan_run(
    home: Home,
    spec: PipelineSpec,
    ds: date | str,
    *,
    scope: str = "",
    dag_run_id: str | None = None,
    metrics: Sequence[str] | None = None,
    store: MetadataStore | None = None,
    now: datetime | None = None,
    force: bool = False,
    requested_at: datetime | None = None,
    from_date: date | None = None,
    to_date: date | None = None,
) -> list[dict[str, Any]]:
    """Record every metric-day's state for this run and return the batches to compute.

    ``ds`` is the newest day the run plans (the Airflow layer passes the last whole UTC day
    before the run's data interval ends). ``now`` is the current time (tests inject it):
    readiness is judged at it (a day that has not ended is never ready) and the batches say
    they were planned at it; the store's own clock stamps the state changes. ``store``
    defaults to the home's. ``force`` recomputes ds where done (finished before
    ``requested_at``, when given); see :class:`RunConf`. Days before the pipeline's
    ``start_date`` or outside [``from_date``, ``to_date``] are never planned: a run whose
    ds is among them plans nothing and records nothing.
    """
    ds = date.fromisoformat(ds) if isinstance(ds, str) else ds
    floor = max(spec.dag_creation_args.start_date, from_date or date.min)
    if ds < floor or (to_date is not None and ds > to_date):
        log.info("%s %s: outside the pipeline's days or the requested range: nothing to plan",
                 spec.dag_id, ds)  # fmt: skip
        return []
    own = store is None
    store = store or MetadataStore.for_home(home)
    try:
        recompute = _Recompute(force, requested_at)
        return _plan(home, spec, ds, floor, scope, dag_run_id, metrics, store, now, recompute)
    finally:
        if own:
            store.close()


def _plan(
    home: Home,
    spec: PipelineSpec,
    ds: date,
    floor: date,
    scope: str,
    dag_run_id: str | None,
    only: Sequence[str] | None,
    store: MetadataStore,
    now: datetime | None,
    recompute: _Recompute,
) -> list[dict[str, Any]]:
    args = spec.dag_creation_args
    now = now or datetime.now(UTC)
    recover_lost_work(store, spec.metric_type, dag_run_id)
    if spec.metric_type == "aggregated":
        register_default_metrics(home, store, slice_end(spec.metric_type, ds))
    catalog = metrics_of(store, spec.metric_type, only)
    names = {m.name for m in catalog}
    window_start = ds - timedelta(days=args.backfill_days)
    _skip_past_window(store, spec, catalog, window_start, floor, scope, dag_run_id)
    first = max(window_start, floor)
    days = [first + timedelta(days=i) for i in range((ds - first).days + 1)]
    existing = {
        (r.metric, r.ds): r
        for r in store.runs(ds_from=first, ds_to=ds, scope=scope)
        if r.metric in names
    }
    live = {lease.key for lease in store.leases()}
    candidates: list[tuple[MetricInfo, date]] = []
    for d in days:
        for metric in catalog:
            run = existing.get((metric.name, d))
            if lease_key(metric.name, d, scope) in live:
                continue  # being computed by another run right now
            if run is not None and run.state == "done" and not (d == ds and recompute.wants(run)):
                continue
            candidates.append((metric, d))
    readiness = check_pairs(home, candidates, experiments=store.experiments(), scope=scope, now=now)
    since = store.runs(ds_from=ds - timedelta(days=DURATION_LOOKBACK_DAYS), states=["done"])
    estimates = estimate_durations(r for r in since if r.metric in names)
    pending: list[Pending] = []
    for metric, d in candidates:
        run = existing.get((metric.name, d))
        idle = _idle(readiness, metric.name, d)
        if idle is not None:
            if run is None or (run.state, run.reason) != idle:
                # An unchanged wait is not re-recorded: frequent schedules would bury the
                # history in "still waiting" events.
                store.set_run_state(metric.name, d, *idle, scope, dag_run_id=dag_run_id)
            continue
        # The run's own day is queued; earlier days, and anything requeued after its worker
        # was lost, are backfills.
        requeued = run is not None and run.state == "backfill_queued"
        state = "queued" if d == ds and not requeued else "backfill_queued"
        recorded = store.set_run_state(
            metric.name, d, state, _queued_reason(run, d == ds), scope, dag_run_id=dag_run_id
        )
        pending.append(Pending(metric.name, d, recorded.created_at, estimates.get(metric.name)))
    batches = make_batches(
        pending,
        pool_slots=args.pool_slots,
        target_batch_seconds=args.target_batch_seconds,
        max_batch_size=args.max_batch_size,
        min_batch_seconds=args.min_batch_seconds,
        default_estimate=args.default_metric_seconds,
    )
    log.info(
        "%s %s: %d metric-day(s) ready in %d batch(es), %d waiting, %d not selected",
        spec.dag_id,
        ds,
        len(pending),
        len(batches),
        len(readiness.waiting),
        len(readiness.not_selected),
    )
    return [
        {
            "metric_type": spec.metric_type,
            "ds": b.ds.isoformat(),
            "metrics": b.metrics,
            "scope": scope,
            "dag_run_id": dag_run_id,
            "estimate_seconds": round(b.estimate_seconds, 3),
            "planned_at": now.isoformat(),
        }
        for b in batches
    ]


def _idle(readiness: Readiness, metric: str, ds: date) -> tuple[str, str] | None:
    """``(state, reason)`` of a metric-day that is not computed now, else ``None``."""
    for state, found in (
        ("not_selected", readiness.not_selected),
        ("waiting_on_source", readiness.waiting),
    ):
        if (metric, ds) in found:
            return state, found[(metric, ds)]
    return None


def register_default_metrics(home: Home, store: MetadataStore, through: datetime) -> None:
    """Register the default metrics (one per event type seen) before listing the catalog.

    ``compute()`` registers them too, but a plan that finds no metric never calls it, so a
    platform with only default metrics would never start. The archive's event types come
    from the importer's ledger; only an archive imported before it recorded them is read
    through its columnar copy.
    """
    from udf.archive.inventory import event_types
    from udf.settings import load_settings

    settings = load_settings(home)
    kinds = event_types(settings.archive_location(home), datetime_to_ms(through))
    if kinds is None:
        from metric_types.columnar import convert

        hours = convert(
            home, "events", spam_cap=settings.spam_cap, ts_to=datetime_to_ms(through),
            settings=settings,
        )  # fmt: skip
        kinds = sorted({t for h in hours for t in h.event_types})
    added = store.register_default_metrics(kinds)
    if added:
        log.info("registered default metrics: %s", ", ".join(added))


@dataclass(frozen=True)
class _Recompute:
    force: bool
    requested_at: datetime | None

    def wants(self, run: RunInfo) -> bool:
        if not self.force:
            return False
        return (
            self.requested_at is None
            or run.finished_at is None
            or (run.finished_at < self.requested_at)
        )


def metrics_of(
    store: MetadataStore, metric_type: str, only: Sequence[str] | None
) -> list[MetricInfo]:
    """The enabled metrics of the type (all, or the ``only`` ones, which must exist)."""
    catalog = [m for m in store.metrics() if m.metric_type == metric_type]
    if only is None:
        return catalog
    known = {m.name: m for m in catalog}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise InputError(
            f"no enabled {metric_type} metric named {', '.join(map(repr, unknown))} in the catalog"
        )
    return [known[name] for name in dict.fromkeys(only)]


def _queued_reason(run: RunInfo | None, today: bool) -> str:
    if run is None:
        return "inputs ready" if today else "backfill: never computed, inputs ready"
    if run.state == "done":
        return "recompute requested"
    if run.state in ("queued", "backfill_queued"):
        return run.reason or "inputs ready"  # re-planned: keep the reason it was queued with
    previous = f"{run.state}: {run.reason}" if run.reason else run.state
    return f"inputs ready (was {previous})" if today else f"backfill after {previous}"


def _skip_past_window(
    store: MetadataStore,
    spec: PipelineSpec,
    catalog: list[MetricInfo],
    window_start: date,
    floor: date,
    scope: str,
    dag_run_id: str | None,
) -> list[RunInfo]:
    """Give up on metric-days older than the window: ``skipped``, with the state they were in.

    Days before the window with no run at all (the scheduler was down and catchup is off)
    are marked too, after the metric's first recorded day, so a gap is visible in
    ``udf status`` instead of silently absent. Days before ``floor`` (the start date, or
    a backfill's range) are not this run's to touch.
    """
    days = spec.dag_creation_args.backfill_days
    names = {m.name for m in catalog}
    live = {lease.key for lease in store.leases()}
    before = window_start - timedelta(days=1)
    if before < floor:
        return []
    skipped = []
    stale = store.runs(states=UNFINISHED, ds_from=floor, ds_to=before, scope=scope)
    for run in stale:
        if run.metric not in names or lease_key(run.metric, run.ds, scope) in live:
            continue
        last = f"{run.state}: {run.reason}" if run.reason else run.state
        reason = f"outside the {days}-day backfill window (last {last})"
        skipped.append(
            store.set_run_state(run.metric, run.ds, "skipped", reason, scope, dag_run_id=dag_run_id)
        )
    if scope:  # an on-demand run owns only the days it was asked for
        return skipped
    # Gaps: days with no run at all (the scheduler was down; catchup is off) between a
    # metric's earlier history and the window. A metric without earlier history is new,
    # and its past is not "skipped".
    start = max(before - timedelta(days=GAP_LOOKBACK_DAYS), floor)
    known: dict[str, set[date]] = {}
    for run in store.runs(ds_from=start, ds_to=before, scope=scope):
        known.setdefault(run.metric, set()).add(run.ds)
    for metric in catalog:
        days_seen = known.get(metric.name)
        if not days_seen:
            continue
        day = min(days_seen)
        while day <= before:
            if day not in days_seen:
                reason = f"outside the {days}-day backfill window (never computed)"
                skipped.append(
                    store.set_run_state(
                        metric.name, day, "skipped", reason, scope, dag_run_id=dag_run_id
                    )
                )
            day += timedelta(days=1)
    return skipped
