"""The work of one compute task: take the leases, compute the batch once, record the outcome.

An Airflow task (one per batch, mapped over the plan) calls :func:`compute_batch`; so does
``udf backfill`` without a server, through :func:`run_in_process`. For each metric-day of the
batch the worker takes its lease (one held by another worker is left alone, still queued,
for that worker to finish), moves it to ``in_progress``, then makes **one** ``compute()``
call for all of them (one shared scan), heartbeating the leases from a thread meanwhile.
Success marks them ``done``; a metric that ``compute`` reports as failed (a custom metric
Spark cannot plan or run, that runs past its time limit, or that returns two rows for a
user) is marked ``failed`` with its one-line reason while the others are ``done``, and the
task succeeds (a retry would fail the same way; the plan requeues failed days anyway). An
error of the whole batch marks every metric ``failed`` with the error as the reason and is
re-raised, so Airflow's retries apply. Leases are always released, and a worker
killed outright leaves leases that expire, after which the metric-day is computed again
(:func:`udf.framework.leases.recover_lost_work`, or a retry taking the expired lease over).
Nothing here imports Spark: ``compute`` is imported when called, and injectable for tests.
``udf compute`` goes through the same path (:func:`compute_now`), so what it computes is
recorded in the lifecycle and never overlaps a scheduler's batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from metadata.records import RunInfo
from metadata.repository import MetadataStore
from udf.errors import InputError
from udf.framework.batching import DONE_REASON
from udf.framework.leases import Heartbeat, default_holder, lease_key
from udf.framework.plan import plan_run
from udf.framework.spec import PipelineSpec
from udf.home import Home
from udf.settings import Settings

log = logging.getLogger(__name__)

ComputeFn = Callable[..., Any]
MAX_REASON = 2000
# Keeps DONE_REASON's prefix: the duration estimates read the batch size from it.
UNSELECTED_REASON = "; no experiment selects it, so it has no results"


def compute_batch(
    home: Home,
    batch: Mapping[str, Any],
    *,
    holder: str | None = None,
    spec: PipelineSpec | None = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
    compute: ComputeFn | None = None,
    recompute: bool = False,
) -> dict[str, Any]:
    """Compute one planned batch under leases; returns a JSON-serialisable summary.

    ``batch`` is one element of :func:`~udf.framework.plan.plan_run`'s result. ``holder``
    names this worker in the leases (default: host, pid and a random suffix; the Airflow
    layer passes the task instance). ``spec`` gives the lease TTL and heartbeat interval
    (defaults of the batch's metric type otherwise); ``settings`` go to ``compute``.
    ``recompute`` computes metric-days that are already done too (``udf compute``).
    """
    metric_type = str(batch["metric_type"])
    spec = spec or PipelineSpec.model_validate({"metric_type": metric_type})
    own = store is None
    store = store or MetadataStore.for_home(home)
    try:
        return _compute_batch(
            home, batch, holder or default_holder(), spec, settings, store, compute, recompute
        )
    finally:
        if own:
            store.close()


def _compute_batch(
    home: Home,
    batch: Mapping[str, Any],
    holder: str,
    spec: PipelineSpec,
    settings: Settings | None,
    store: MetadataStore,
    compute: ComputeFn | None,
    recompute: bool,
) -> dict[str, Any]:
    args = spec.dag_creation_args
    metric_type = str(batch["metric_type"])
    ds = date.fromisoformat(str(batch["ds"]))
    scope = str(batch.get("scope") or "")
    dag_run_id = batch.get("dag_run_id")
    planned_at = _parse_time(batch.get("planned_at"))
    summary: dict[str, Any] = {
        "metric_type": metric_type,
        "ds": ds.isoformat(),
        "scope": scope,
        "holder": holder,
        "computed": [],
        "failed": {},
        "held_elsewhere": [],
        "already_done": [],
        "lost_leases": [],
        "rows": None,
        "seconds": 0.0,
    }
    taken: list[str] = []  # lease keys this worker holds and must release
    working: list[str] = []  # metrics moved to in_progress by this worker
    succeeded = False
    try:
        for metric in batch["metrics"]:
            key = lease_key(metric, ds, scope)
            if not store.acquire_lease(key, holder, args.lease_ttl_seconds):
                summary["held_elsewhere"].append(metric)
                continue
            taken.append(key)
            run = store.run(metric, ds, scope)
            finished = None if recompute else _finished_since(run, planned_at)
            if finished is not None:
                # Another run computed it after this batch was planned: nothing to redo.
                if run is not None and run.state != "done":  # a concurrent plan re-queued it
                    store.set_run_state(metric, ds, "done", finished, scope)
                summary["already_done"].append(metric)
                store.release(key, holder)
                taken.remove(key)
                continue
            reason = "taking over from a lost worker" if _orphaned(run) else None
            store.set_run_state(metric, ds, "in_progress", reason, scope, dag_run_id=dag_run_id)
            working.append(metric)
        if not working:
            return summary
        fn = compute if compute is not None else _default_compute()
        started = time.monotonic()
        keys = [lease_key(m, ds, scope) for m in working]
        with Heartbeat(
            store,
            keys,
            holder,
            ttl_seconds=args.lease_ttl_seconds,
            interval=args.heartbeat_seconds,
        ) as heartbeat:
            report = fn(
                home,
                metric_type,
                [ds],
                metrics=list(working),
                experiments=[scope] if scope else None,
                settings=settings,
            )
        summary["seconds"] = round(time.monotonic() - started, 3)
        summary["rows"] = getattr(report, "rows", None)
        summary["lost_leases"] = sorted(heartbeat.lost)
        failed = _failures(report, ds)
        unselected = set(getattr(report, "unselected", ()))
        done_reason = DONE_REASON.format(size=len(working))
        for metric in working:
            if metric in failed:
                store.set_run_state(
                    metric, ds, "failed", _clip(failed[metric]), scope, dag_run_id=dag_run_id
                )
                continue
            reason = done_reason + (UNSELECTED_REASON if metric in unselected else "")
            store.set_run_state(metric, ds, "done", reason, scope, dag_run_id=dag_run_id)
        summary["computed"] = [m for m in working if m not in failed]
        summary["failed"] = {m: failed[m] for m in working if m in failed}
        succeeded = True
        return summary
    except BaseException as exc:
        if not succeeded:
            _mark_failed(store, working, ds, scope, dag_run_id, exc)
        raise
    finally:
        for key in taken:
            try:
                store.release(key, holder)
            except Exception:  # the lease will expire; the error being handled matters more
                log.exception("cannot release lease %s; it will expire", key)


def compute_now(
    home: Home,
    metric_type: str,
    ds: date,
    *,
    metrics: Sequence[str] | None = None,
    scope: str = "",
    settings: Settings | None = None,
    store: MetadataStore | None = None,
    compute: ComputeFn | None = None,
    requested_at: datetime | None = None,
) -> dict[str, Any]:
    """What ``udf compute`` does for one ds: compute every enabled metric of the type (or
    ``metrics``) now, done or not, as one batch of :func:`compute_batch`.

    So a direct computation is in the lifecycle like a scheduled one (``in_progress``, then
    ``done`` or ``failed`` with the reason, under the dag run ``udf_compute__<time>``), and
    its leases keep it from computing a metric-day a scheduler's worker is computing. No
    readiness check: the caller asked for this day now.
    """
    from udf.framework.plan import metrics_of, register_default_metrics
    from udf.framework.readiness import slice_end

    own = store is None
    store = store or MetadataStore.for_home(home)
    try:
        if scope and scope not in {e.name for e in store.experiments()}:
            raise InputError(f"unknown experiment {scope!r}")
        if metric_type == "aggregated":
            register_default_metrics(home, store, slice_end(metric_type, ds))
        names = [m.name for m in metrics_of(store, metric_type, metrics)]
        requested_at = requested_at or datetime.now(UTC)
        batch = {
            "metric_type": metric_type,
            "ds": ds.isoformat(),
            "metrics": names,
            "scope": scope,
            "dag_run_id": f"udf_compute__{requested_at:%Y-%m-%dT%H:%M:%S}",
        }
        return compute_batch(
            home, batch, settings=settings, store=store, compute=compute, recompute=True
        )
    finally:
        if own:
            store.close()


def _finished_since(run: RunInfo | None, planned_at: datetime | None) -> str | None:
    """Why the run needs no computing: done, or done since the plan (then re-queued by a
    concurrent plan that read it before); ``None`` when it must be computed."""
    if run is None:
        return None
    if run.state == "done":
        return run.reason or "done"
    if planned_at is None:
        return None
    for event in reversed(run.events):
        if event.at <= planned_at:  # a tie recomputes: harmless, where skipping would not be
            break
        if event.to_state == "done":
            return event.reason or "done"
    return None


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _orphaned(run: Any) -> bool:
    return run is not None and run.state == "in_progress"


def _failures(report: Any, ds: date) -> dict[str, str]:
    """The metrics ``compute`` reports as failed on ``ds`` (none for a report without any)."""
    failed_on = getattr(report, "failed_on", None)
    return dict(failed_on(ds)) if callable(failed_on) else {}


def _clip(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def _mark_failed(
    store: MetadataStore,
    metrics: Sequence[str],
    ds: date,
    scope: str,
    dag_run_id: Any,
    exc: BaseException,
) -> None:
    reason = _clip(f"{type(exc).__name__}: {exc}".strip())
    for metric in metrics:
        try:
            store.set_run_state(metric, ds, "failed", reason, scope, dag_run_id=dag_run_id)
        except Exception:  # keep the original error; the lease expiry requeues the run
            log.exception("cannot record %s %s as failed", metric, ds)


def _default_compute() -> ComputeFn:
    from metric_types.compute import compute

    return compute


def run_in_process(
    home: Home,
    spec: PipelineSpec,
    ds_from: date | str,
    ds_to: date | str,
    scope: str = "",
    metrics: Sequence[str] | None = None,
    *,
    force: bool = False,
    store: MetadataStore | None = None,
    compute: ComputeFn | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
    requested_at: datetime | None = None,
    progress: Callable[[date, int, int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Plan and compute every ds from ``ds_from`` to ``ds_to`` here, batch after batch.

    What ``udf backfill`` does without an Airflow server (and ``make demo``): the same plan
    and the same leased batches as the DAG, so a concurrent scheduler run and this one
    never compute the same metric-day at once. Nothing outside the range is planned (the
    look-back stops at ``ds_from``). A failing batch is recorded (its metrics
    ``failed``, the summary's ``error``) and the remaining batches still run; ``progress``
    is called after each batch with (ds, batch number, batch count, summary).
    """
    start = date.fromisoformat(ds_from) if isinstance(ds_from, str) else ds_from
    end = date.fromisoformat(ds_to) if isinstance(ds_to, str) else ds_to
    if end < start:
        raise InputError(f"--to {end} is before --from {start}")
    own = store is None
    store = store or MetadataStore.for_home(home)
    holder = default_holder()
    requested_at = requested_at or datetime.now(UTC)
    dag_run_id = f"in_process__{requested_at:%Y-%m-%dT%H:%M:%S}"
    summaries: list[dict[str, Any]] = []
    try:
        for offset in range((end - start).days + 1):
            ds = start + timedelta(days=offset)
            batches = plan_run(
                home,
                spec,
                ds,
                scope=scope,
                dag_run_id=dag_run_id,
                metrics=metrics,
                store=store,
                now=now,
                force=force,
                requested_at=requested_at,
                from_date=start,
                to_date=end,
            )
            for i, batch in enumerate(batches, 1):
                try:
                    summary = compute_batch(
                        home,
                        batch,
                        holder=holder,
                        spec=spec,
                        settings=settings,
                        store=store,
                        compute=compute,
                    )
                except Exception as exc:
                    log.error("batch %s %s failed: %s", batch["ds"], batch["metrics"], exc)
                    summary = {**batch, "error": f"{type(exc).__name__}: {exc}"}
                summary["planned_for"] = ds.isoformat()
                summaries.append(summary)
                if progress is not None:
                    progress(ds, i, len(batches), summary)
            if not batches and progress is not None:
                progress(ds, 0, 0, {})
        return summaries
    finally:
        if own:
            store.close()
