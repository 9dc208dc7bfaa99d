"""Plan one run of a pipeline: what to compute now, in which batches, and why not the rest.

Every run of a metric type's DAG (scheduled, backfilled or in-process) starts here. For the
run's ds and the ``backfill_days`` before it, each metric-day of the type ends up in exactly
one of these outcomes, recorded in the metadata store with a reason (``udf status``):

- ``done`` already (and no recompute asked): left alone;
- leased by a worker right now: left alone (the in-progress list; no duplicate computation);
- inputs ready: ``queued`` (the run's own ds) or ``backfill_queued`` (an earlier day that was
  missing, waiting, failed or skipped) and put in a batch;
- inputs not ready: ``waiting_on_source`` with what it waits for.

Metric-days older than the window that never finished become ``skipped`` (their owners
are told by :mod:`.notify`), and ``in_progress`` runs whose worker died (lease expired)
are requeued first. The result is a JSON-serialisable list of batches, one per parallel
compute task (Airflow maps a task over it), each ``{"metric_type", "ds", "metrics",
"scope", ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from metadata.records import MetricInfo, RunInfo
from metadata.repository import MetadataStore
from udf.archive.seal import datetime_to_ms
from udf.errors import InputError
from udf.framework.batching import Pending, estimate_durations, make_batches
from udf.framework.leases import lease_key, recover_lost_work
from udf.framework.readiness import check_pairs, slice_end
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
    the several runs a backfill creates per day (sub-daily schedules) recompute it once.
    """

    scope: str = ""
    metrics: tuple[str, ...] | None = None
    force: bool = False
    requested_at: datetime | None = None

    def as_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"scope": self.scope, "force": self.force}
        if self.metrics is not None:
            conf["metrics"] = list(self.metrics)
        if self.requested_at is not None:
            conf["requested_at"] = self.requested_at.isoformat()
        return conf

    def plan_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`plan_run`."""
        return {
            "scope": self.scope,
            "metrics": list(self.metrics) if self.metrics is not None else None,
            "force": self.force,
            "requested_at": self.requested_at,
        }


def parse_run_conf(conf: Mapping[str, Any] | None) -> RunConf:
    """Validate a run's conf; anything unknown or mistyped is refused, not ignored."""
    conf = dict(conf or {})
    unknown = sorted(set(conf) - {"scope", "metrics", "force", "requested_at"})
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
    return RunConf(scope, tuple(metrics) if metrics is not None else None, force, requested_at)


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
) -> list[dict[str, Any]]:
    """Record every metric-day's state for this run and return the batches to compute.

    ``ds`` is the newest day the run plans (the Airflow layer passes the last whole UTC day
    before the run's data interval ends). ``now`` is the current time (tests inject it):
    readiness is judged at it (a day that has not ended is never ready) and the batches say
    they were planned at it; the store's own clock stamps the state changes. ``store`` defaults to the home's. ``force`` recomputes ds
    where done (finished before ``requested_at``, when given); see :class:`RunConf`.
    """
    ds = date.fromisoformat(ds) if isinstance(ds, str) else ds
    own = store is None
    store = store or MetadataStore.for_home(home)
    try:
        recompute = _Recompute(force, requested_at)
        return _plan(home, spec, ds, scope, dag_run_id, metrics, store, now, recompute)
    finally:
        if own:
            store.close()


def _plan(
    home: Home,
    spec: PipelineSpec,
    ds: date,
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
    _skip_past_window(store, spec, catalog, window_start, scope, dag_run_id)
    first = max(window_start, min(args.start_date, ds))
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
        waiting = readiness.waiting.get((metric.name, d))
        if waiting is not None:
            if run is None or (run.state, run.reason) != ("waiting_on_source", waiting):
                # Unchanged waits are not re-recorded: frequent schedules would bury the
                # history in "still waiting" events.
                store.set_run_state(
                    metric.name, d, "waiting_on_source", waiting, scope, dag_run_id=dag_run_id
                )
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
        "%s %s: %d metric-day(s) ready in %d batch(es), %d waiting",
        spec.dag_id,
        ds,
        len(pending),
        len(batches),
        len(readiness.waiting),
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


def register_default_metrics(home: Home, store: MetadataStore, through: datetime) -> None:
    """Register the default metrics (one per event type seen) before listing the catalog.

    ``compute()`` registers them too, but a plan that finds no metric never calls it, so a
    platform with only default metrics would never start. The archive's event types come
    from its columnar copy, which the compute tasks need anyway (cached per hour).
    """
    from metric_types.columnar import convert
    from udf.settings import load_settings

    hours = convert(
        home, "events", spam_cap=load_settings(home).spam_cap, ts_to=datetime_to_ms(through)
    )
    added = store.register_default_metrics(sorted({t for h in hours for t in h.event_types}))
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
    scope: str,
    dag_run_id: str | None,
) -> list[RunInfo]:
    """Give up on metric-days older than the window: ``skipped``, with the state they were in.

    Days before the window with no run at all (the scheduler was down and catchup is off)
    are marked too, after the metric's first recorded day, so a gap is visible in
    ``udf status`` instead of silently absent.
    """
    days = spec.dag_creation_args.backfill_days
    names = {m.name for m in catalog}
    live = {lease.key for lease in store.leases()}
    before = window_start - timedelta(days=1)
    skipped = []
    stale = store.runs(states=UNFINISHED, ds_to=before, scope=scope)
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
    start = max(before - timedelta(days=GAP_LOOKBACK_DAYS), spec.dag_creation_args.start_date)
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
    seen = {r.metric for r in store.runs(ds_from=before, ds_to=before, scope=scope)}
    for metric in catalog:
        if metric.name in seen or metric.created_at.date() > before:
            continue
        if before < spec.dag_creation_args.start_date:
            continue
        reason = f"outside the {days}-day backfill window (never computed)"
        skipped.append(
            store.set_run_state(
                metric.name, before, "skipped", reason, scope, dag_run_id=dag_run_id
            )
        )
    return skipped
