"""What the factory's tasks do when they run: read the Airflow context, call the framework.

The DAG file imports only :mod:`udf.framework.builder`; each task body imports this module
when it runs, and this module imports the framework (SQLAlchemy, and through ``compute()``
Spark) lazily again, so parsing never pays for any of it. Everything here is a thin
translation: Airflow's context (data interval, params, task instance) in, the framework's
functions (:func:`~udf.framework.plan.plan_run`, :func:`~udf.framework.tasks.compute_batch`,
:func:`~udf.framework.notify.notify_owners`) called with the platform home of
:func:`~udf.framework.metadata_hook.task_home`, which carries the metadata store the
``udf_metadata`` connection (or ``$UDF_METADATA_URL``) names to everything the task calls,
``compute()`` included; JSON out for XCom.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from udf.errors import InputError
from udf.framework.metadata_hook import task_home

RANGE_KEY = "udf_planned_days"  # XCom of the plan task: the first and last day it planned

if TYPE_CHECKING:
    from metadata.records import ExperimentInfo
    from metadata.repository import MetadataStore
    from udf.framework.plan import RunConf
    from udf.framework.spec import PipelineSpec
    from udf.home import Home

log = logging.getLogger(__name__)


def run_ds(context: Mapping[str, Any]) -> date:
    """The newest day a pipeline run plans: the last whole UTC day before its interval's end.

    A daily run for [D, D+1) and a backfill run for D plan D; a run every 4 hours plans the
    day before (today has not ended); a manual run without an interval, the day before its
    logical date (or its run-after time).
    """
    end = context.get("data_interval_end") or context.get("logical_date")
    if end is None:
        end = context["dag_run"].run_after
    midnight = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - timedelta(days=1)).date()


def plan_pipeline_run(spec: PipelineSpec, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``plan`` task of ``udf_<metric_type>``: record the lifecycle, return the batches."""
    from udf.framework.plan import plan_run

    conf = run_conf(context)
    ds = run_ds(context)
    home = task_home()
    with open_store(home) as store:
        batches = plan_run(
            home, spec, ds, dag_run_id=context["run_id"], store=store, **conf.plan_kwargs()
        )
    log.info(
        "%s: planned ds %s (scope %r): %d batch(es)", spec.dag_id, ds, conf.scope, len(batches)
    )
    _record_range(context, ds - timedelta(days=spec.dag_creation_args.backfill_days), ds)
    return batches


def run_conf(context: Mapping[str, Any]) -> RunConf:
    """The run's :class:`~udf.framework.plan.RunConf` from its params and conf.

    The params form (UI) and the conf (REST, ``udf backfill --server``) use the same keys;
    the conf wins, also where ``[core] dag_run_conf_overrides_params`` is off. An empty
    experiment or metrics list means "all".
    """
    from udf.framework.plan import CONF_KEYS, parse_run_conf

    dag_run = context.get("dag_run")
    merged = {**dict(context.get("params") or {}), **dict(getattr(dag_run, "conf", None) or {})}
    raw = {key: merged[key] for key in CONF_KEYS if key in merged}
    raw["scope"] = raw.get("scope") or ""
    raw["metrics"] = list(raw["metrics"]) if raw.get("metrics") else None
    return parse_run_conf(raw)


def plan_tool_run(
    specs: Mapping[str, PipelineSpec], context: Mapping[str, Any], *, on_demand: bool
) -> list[dict[str, Any]]:
    """The ``plan`` task of the tool DAGs: resolve the form's range, plan it in one go."""
    params = context["params"]
    metric_type = str(params.get("metric_type") or "")
    if metric_type not in specs:
        raise InputError(f"metric_type {metric_type!r}: expected one of {', '.join(sorted(specs))}")
    scope = str(params.get("experiment") or "")
    if on_demand and not scope:
        raise InputError("an on-demand run needs an experiment")
    metrics = list(params["metrics"]) if params.get("metrics") else None
    home = task_home()
    now = datetime.now(UTC)
    with open_store(home) as store:
        ds_from, ds_to = resolve_range(
            store, home, scope, _day(params.get("from_date")), _day(params.get("to_date")), now
        )
        log.info("%s %s %s..%s scope %r", context["dag"].dag_id, metric_type, ds_from, ds_to, scope)
        _record_range(context, ds_from, ds_to)
        return plan_range(
            home,
            specs[metric_type],
            ds_from,
            ds_to,
            scope=scope,
            metrics=metrics,
            force=bool(params.get("force", False)),
            store=store,
            dag_run_id=context["run_id"],
            now=now,
        )


def resolve_range(
    store: MetadataStore,
    home: Home,
    scope: str,
    ds_from: date | None,
    ds_to: date | None,
    now: datetime,
) -> tuple[date, date]:
    """Fill a missing end of the range from the experiments' ramps (the contract §3 periods).

    From: the first ramp's day (of ``scope``, else of any experiment). To: the last day of
    the last aggregation period, but at most yesterday (today has not ended).
    """
    from udf.settings import load_settings

    experiments = store.experiments([scope]) if scope else store.experiments()
    if scope and not experiments:
        raise InputError(f"experiment {scope!r} is not in the metadata store (udf ramps import)")
    if ds_from is None or ds_to is None:
        first, last = _experiment_range(experiments, load_settings(home).window_ms)
        yesterday = now.astimezone(UTC).date() - timedelta(days=1)
        ds_from = ds_from or first
        ds_to = ds_to or (min(last, yesterday) if last else yesterday)
        if ds_from is None:
            raise InputError("no experiment has a ramp yet: give from_date")
    if ds_to < ds_from:
        raise InputError(f"to_date {ds_to} is before from_date {ds_from}")
    return ds_from, ds_to


def plan_range(
    home: Home,
    spec: PipelineSpec,
    ds_from: date,
    ds_to: date,
    *,
    scope: str,
    metrics: Sequence[str] | None,
    force: bool,
    store: MetadataStore,
    dag_run_id: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """Plan every day of [ds_from, ds_to] at once, with the pipeline's own planner.

    ``plan_run`` looks back ``backfill_days`` from its ds and marks older unfinished days
    skipped; planning the last day with a look-back that reaches ``ds_from`` queues the whole
    range in one plan (so the batches run in parallel, not one day after another). For all
    experiments the look-back also reaches the pipeline's normal window (yesterday minus
    ``backfill_days``), so a recent range never marks days of that window skipped. ``force``
    requeues the range's done days first (``plan_run`` recomputes only its own ds).
    """
    from udf.framework.plan import plan_run

    args = spec.dag_creation_args
    start = ds_from
    if not scope:
        start = min(ds_from, now.astimezone(UTC).date() - timedelta(days=1 + args.backfill_days))
    ranged = spec.model_copy(
        update={
            "dag_creation_args": args.model_copy(
                update={
                    "backfill_days": (ds_to - start).days,
                    "start_date": min(args.start_date, start),
                }
            )
        }
    )
    if force:
        _requeue_done(store, spec.metric_type, ds_from, ds_to, scope, metrics, dag_run_id)
    return plan_run(
        home,
        ranged,
        ds_to,
        scope=scope,
        dag_run_id=dag_run_id,
        metrics=metrics,
        store=store,
        force=force,
    )


def compute(spec: PipelineSpec, batch: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The ``compute_batch`` task: one batch under leases, named after the task instance."""
    from udf.framework.leases import task_holder
    from udf.framework.tasks import compute_batch
    from udf.settings import load_settings

    scope = f" [{batch['scope']}]" if batch.get("scope") else ""
    context["udf_batch_label"] = f"{batch['ds']}{scope}: {len(batch['metrics'])} metric(s)"
    ti = context["ti"]
    holder = f"{ti.dag_id}:" + task_holder(ti.run_id, ti.task_id, ti.map_index, ti.try_number)
    home = task_home()
    with open_store(home) as store:
        summary = compute_batch(
            home, batch, holder=holder, spec=spec, settings=load_settings(home), store=store
        )
    log.info(
        "computed %s, held elsewhere %s, already done %s",
        summary["computed"],
        summary["held_elsewhere"],
        summary["already_done"],
    )
    return summary


def notify(specs: Sequence[PipelineSpec], context: Mapping[str, Any]) -> dict[str, Any]:
    """The ``notify`` task: one digest per owner of late or skipped metric-days.

    The framework's notifier looks back a fixed number of days from now; a run that plans
    older days (a backfill, a late catch-up) must also tell owners about the days *it*
    skipped or left waiting, so the look-back reaches the oldest day the run planned (as
    its ``plan`` task recorded, :data:`RANGE_KEY`), less the pipeline's window.
    """
    from udf.framework.notify import LOOKBACK_DAYS, notify_owners, smtp_sender

    home = task_home()
    label = f"{context['dag'].dag_id} {context['run_id']}"
    planned = context["ti"].xcom_pull(task_ids="plan", key=RANGE_KEY) or {}
    now = datetime.now(UTC)
    reports: dict[str, Any] = {}
    with open_store(home) as store:
        for spec in specs:
            args = spec.dag_creation_args
            oldest = _day(planned.get("from")) or now.date()
            reach = (now.date() - oldest).days + args.backfill_days + 1
            log.info("%s: notifying owners, looking back %d day(s)", spec.dag_id, reach)
            report = notify_owners(
                store, smtp_sender(args.smtp_conn_id), now=now, metric_type=spec.metric_type,
                email_from=args.email_from, max_attempts=args.notify_max_attempts,
                run_label=label, lookback_days=max(LOOKBACK_DAYS, reach),
            )  # fmt: skip
            reports[spec.metric_type] = report.as_dict()
    return reports


def open_store(home: Home) -> MetadataStore:
    """The home's metadata store (the connection's, when :func:`task_home` found one)."""
    from metadata.repository import MetadataStore

    return MetadataStore.for_home(home)


def _record_range(context: Mapping[str, Any], first: date, last: date) -> None:
    context["ti"].xcom_push(
        key=RANGE_KEY, value={"from": first.isoformat(), "to": last.isoformat()}
    )


def _experiment_range(
    experiments: Sequence[ExperimentInfo], window_ms: int
) -> tuple[date | None, date | None]:
    starts, ends = [], []
    for experiment in experiments:
        for group in experiment.groups:
            for period in group.periods(window_ms):
                starts.append(period.start)
                ends.append(period.end)
    if not starts:
        return None, None
    return _utc_day(min(starts)), _utc_day(max(ends) - 1)


def _requeue_done(
    store: MetadataStore,
    metric_type: str,
    ds_from: date,
    ds_to: date,
    scope: str,
    metrics: Sequence[str] | None,
    dag_run_id: str,
) -> None:
    wanted = set(metrics) if metrics else None
    for run in store.runs(states=["done"], ds_from=ds_from, ds_to=ds_to, scope=scope):
        if run.metric_type != metric_type or (wanted is not None and run.metric not in wanted):
            continue
        store.set_run_state(
            run.metric,
            run.ds,
            "backfill_queued",
            "recompute requested",
            scope,
            dag_run_id=dag_run_id,
        )


def _utc_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date()


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{value!r} is not a date (YYYY-MM-DD)") from None
