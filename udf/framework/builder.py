"""The DAG factory: pipeline specs in, one Airflow DAG per metric type out (plus two tool DAGs).

Every pipeline DAG ``udf_<metric_type>`` has the same shape, the framework's::

    plan ──> compute_batch (mapped: one task per batch, in the type's pool) ──> notify
                                       └──────────────> fail_if_a_batch_failed

``plan`` records each metric-day's lifecycle and returns the batches (JSON); Airflow's
dynamic task mapping turns them into parallel ``compute_batch`` tasks in the pipeline's
pool, retried as the spec says; ``notify`` runs whatever happened (``all_done``) and mails
the owners of late or skipped metric-days; the last task fails the run when a batch
failed (so a red run means a failed batch, while notify still ran).

Two tool DAGs, triggered from the UI's params form (or the REST API), reuse the same tasks:
``udf_on_demand`` computes chosen metrics for one experiment, ``udf_range_backfill`` a
metric type over a range (by default the whole range of an experiment, or of all of them).

Parsing is cheap on purpose (Airflow parses DAG files every few seconds and gives up after
30 s): only the small pipeline files are read here. The metric catalog and the experiments
are read at run time from the metadata store (``udf config load`` is their front door and
validates them with every error at once); task bodies import :mod:`udf.framework.airflow_tasks`,
and through it Spark, only when they run. A bad pipeline file never hides the other DAGs:
its DAG is left out and every issue, with file and field, is returned for the caller to
report (``dags/udf_config_errors.py`` turns them into an import error in the UI).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import (
    DAG,
    CronDataIntervalTimetable,
    Param,
    TriggerRule,
    dag,
    get_current_context,
    task,
)

from udf.errors import ConfigError, ConfigIssue
from udf.framework.spec import PipelineSpec, load_pipelines
from udf.vocabulary import METRIC_TYPES

ON_DEMAND_DAG_ID = "udf_on_demand"
RANGE_BACKFILL_DAG_ID = "udf_range_backfill"
TOOLS_POOL = "udf_tools"  # the tool DAGs' compute tasks (one pool: their metric type is a param)
TOOLS_RETRIES = 2
TOOLS_RETRY_DELAY = timedelta(minutes=5)


class UdfConfigWarning(UserWarning):
    """A pipeline file was left out; Airflow records the warning with the DAG file's parse."""


@dataclass
class Built:
    """The DAGs that built, by id, and every issue of the pipeline files that did not."""

    dags: dict[str, DAG] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)
    specs: dict[str, PipelineSpec] = field(default_factory=dict)


def build_dags(path: str | os.PathLike[str] | None = None) -> Built:
    """Every pipeline DAG of the files under ``path`` (default ``$UDF_PIPELINES_DIR`` or the
    shipped configs), plus the tool DAGs over the pipelines that loaded."""
    pipelines = load_pipelines(path)
    built = Built(issues=list(pipelines.issues))
    for file, spec in sorted(pipelines.specs.items(), key=lambda item: item[1].metric_type):
        try:
            built.dags[spec.dag_id] = _validated(build_pipeline_dag(spec, source=file))
            built.specs[spec.metric_type] = spec
        except Exception as exc:  # e.g. a cron expression Airflow refuses: this DAG only
            built.issues.append(ConfigIssue(file, _field_of(exc), f"{type(exc).__name__}: {exc}"))
    if built.specs:
        for make in (build_on_demand_dag, build_range_backfill_dag):
            tool = _validated(make(built.specs))
            built.dags[tool.dag_id] = tool
    return built


def register(
    namespace: MutableMapping[str, Any], path: str | os.PathLike[str] | None = None
) -> Built:
    """Put the DAGs in a DAG file's globals; warn once per issue (recorded with the parse)."""
    built = build_dags(path)
    namespace.update(built.dags)
    for issue in built.issues:
        warnings.warn(f"pipeline config left out: {issue}", UdfConfigWarning, stacklevel=2)
    return built


def check_configs(path: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`~udf.errors.ConfigError` listing every pipeline config issue, if any."""
    built = build_dags(path)
    if built.issues:
        raise ConfigError(built.issues)


def timetable_for(schedule: str) -> Any:
    """A cron expression or preset as a data-interval timetable in UTC; other values as given.

    Data intervals make a run's day unambiguous: it plans up to the last whole UTC day
    before its interval's end (:func:`udf.framework.airflow_tasks.run_ds`), so a daily run
    for [D, D+1) and a backfill run for D both mean ds = D, whatever
    ``[scheduler] create_cron_data_intervals`` says.
    """
    text = schedule.strip()
    if text in ("@once", "@continuous"):
        return text
    if text.lower() in ("none", "null", "manual"):
        return None
    return CronDataIntervalTimetable(text, timezone="UTC")


def build_pipeline_dag(spec: PipelineSpec, source: str | None = None) -> DAG:
    """The DAG ``udf_<metric_type>`` of one pipeline spec."""
    args = spec.dag_creation_args
    timeout = args.execution_timeout_seconds

    @dag(
        dag_id=spec.dag_id,
        description=spec.description or f"UDF {spec.metric_type} metrics",
        schedule=timetable_for(args.schedule),
        start_date=datetime.combine(args.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=args.catchup,
        max_active_runs=args.max_active_runs,
        tags=sorted({"udf", spec.metric_type, *args.tags}),
        params=_pipeline_params(),
        doc_md=_pipeline_doc(spec, source),
        default_args={"owner": "udf"},
        auto_register=False,
    )
    def pipeline() -> None:
        @task(task_id="plan", retries=args.retries, retry_delay=_seconds(args.retry_delay_seconds))
        def plan() -> list[dict[str, Any]]:
            from udf.framework import airflow_tasks

            return airflow_tasks.plan_pipeline_run(spec, get_current_context())

        @task(
            task_id="compute_batch",
            multiple_outputs=False,
            pool=spec.pool,
            retries=args.retries,
            retry_delay=_seconds(args.retry_delay_seconds),
            execution_timeout=_seconds(timeout) if timeout else None,
            map_index_template="{{ udf_batch_label }}",
        )
        def compute_batch(batch: dict[str, Any]) -> dict[str, Any]:
            from udf.framework import airflow_tasks

            return airflow_tasks.compute(spec, batch, get_current_context())

        @task(
            task_id="notify",
            multiple_outputs=False,
            trigger_rule=TriggerRule.ALL_DONE,
            retries=args.retries,
        )
        def notify() -> dict[str, Any]:
            from udf.framework import airflow_tasks

            return airflow_tasks.notify([spec], get_current_context())

        _wire(plan(), compute_batch, notify())

    return pipeline()


def build_on_demand_dag(specs: Mapping[str, PipelineSpec]) -> DAG:
    """``udf_on_demand``: metrics of one metric type for one experiment, over chosen days."""
    types = sorted(specs)

    @dag(
        dag_id=ON_DEMAND_DAG_ID,
        description="Compute metrics for one experiment now (its own lifecycle scope).",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        tags=["udf", "tools"],
        params={
            "experiment": Param(
                type="string",
                pattern=_NAME,
                title="Experiment",
                description="The experiment to compute (required).",
            ),
            **_tool_params(types, force=True),
        },
        doc_md=_ON_DEMAND_DOC,
        default_args={"owner": "udf"},
        auto_register=False,
    )
    def on_demand() -> None:
        _tool_tasks(specs, on_demand=True)

    return on_demand()


def build_range_backfill_dag(specs: Mapping[str, PipelineSpec]) -> DAG:
    """``udf_range_backfill``: a metric type over a range, by default an experiment's whole range."""
    types = sorted(specs)

    @dag(
        dag_id=RANGE_BACKFILL_DAG_ID,
        description="Backfill a metric type over a date range (default: the full experiment range).",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        tags=["udf", "tools"],
        params={
            "experiment": Param(
                "",
                type=["string", "null"],
                pattern=_NAME_OR_EMPTY,
                title="Experiment (optional)",
                description="Only this experiment (its own scope); empty: every experiment.",
            ),
            **_tool_params(types, force=False),
        },
        doc_md=_RANGE_DOC,
        default_args={"owner": "udf"},
        auto_register=False,
    )
    def range_backfill() -> None:
        _tool_tasks(specs, on_demand=False)

    return range_backfill()


def _tool_tasks(specs: Mapping[str, PipelineSpec], *, on_demand: bool) -> None:
    @task(task_id="plan")
    def plan() -> list[dict[str, Any]]:
        from udf.framework import airflow_tasks

        return airflow_tasks.plan_tool_run(specs, get_current_context(), on_demand=on_demand)

    @task(
        task_id="compute_batch",
        multiple_outputs=False,
        pool=TOOLS_POOL,
        retries=TOOLS_RETRIES,
        retry_delay=TOOLS_RETRY_DELAY,
        map_index_template="{{ udf_batch_label }}",
    )
    def compute_batch(batch: dict[str, Any]) -> dict[str, Any]:
        from udf.framework import airflow_tasks

        return airflow_tasks.compute(specs[batch["metric_type"]], batch, get_current_context())

    @task(task_id="notify", multiple_outputs=False, trigger_rule=TriggerRule.ALL_DONE)
    def notify() -> dict[str, Any]:
        from udf.framework import airflow_tasks

        context = get_current_context()
        chosen = specs.get(str(context["params"].get("metric_type")))
        return airflow_tasks.notify([chosen] if chosen else [], context)

    _wire(plan(), compute_batch, notify())


def _wire(batches: Any, compute_batch: Any, notified: Any) -> None:
    """plan → compute_batch.expand(batch=...) → notify, and the watcher over all of them."""

    @task(task_id="fail_if_a_batch_failed", trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def fail_if_a_batch_failed() -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed: see its log and `udf status`")

    computed = compute_batch.expand(batch=batches)
    computed >> notified
    [batches, computed, notified] >> fail_if_a_batch_failed()


_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$"  # udf.names.NAME
_NAME_OR_EMPTY = r"^([A-Za-z0-9_][A-Za-z0-9_.\-]{0,127})?$"


# Airflow's trigger form marks a param required unless its type admits null, so the
# optional ones (empty means "all") also admit null.
def _pipeline_params() -> dict[str, Param]:
    """The run conf a pipeline run understands (names as ``udf.framework.plan.RunConf``)."""
    return {
        "scope": Param(
            "", type=["string", "null"], pattern=_NAME_OR_EMPTY, title="Experiment",
            description="Compute for this experiment alone (an on-demand scope); empty: all.",
        ),
        "metrics": Param(
            [], type=["array", "null"], items={"type": "string"}, title="Metrics",
            description="Only these metrics of the type (one per line); empty: all of them.",
        ),
        "force": Param(
            False, type="boolean", title="Recompute",
            description="Recompute the run's day even where it is already done.",
        ),
    }  # fmt: skip


def _tool_params(types: list[str], *, force: bool) -> dict[str, Param]:
    return {
        "metric_type": Param(types[0], type="string", enum=types, title="Metric type"),
        "metrics": Param(
            [], type=["array", "null"], items={"type": "string"}, title="Metrics",
            description="Only these metrics (one per line); empty: every metric of the type.",
        ),
        "from_date": Param(
            None, type=["null", "string"], format="date", title="From (UTC day)",
            description="Empty: the experiment's first ramp (all experiments': the earliest).",
        ),
        "to_date": Param(
            None, type=["null", "string"], format="date", title="To (UTC day, inclusive)",
            description="Empty: yesterday, or the end of the last aggregation period if earlier.",
        ),
        "force": Param(
            force, type="boolean", title="Recompute",
            description="Recompute days that are already done (otherwise only what is missing).",
        ),
    }  # fmt: skip


def _validated(built: DAG) -> DAG:
    built.validate()  # what DagBag does; failing here leaves this DAG out, not the file's others
    return built


def _field_of(exc: Exception) -> str:
    return "dag_creation_args.schedule" if "Timetable" in type(exc).__name__ else ""


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _pipeline_doc(spec: PipelineSpec, source: str | None) -> str:
    args = spec.dag_creation_args
    where = f"`{Path(source).name}`" if source else "defaults"
    return (
        f"**UDF pipeline for `{spec.metric_type}` metrics** (from {where}).\n\n"
        f"Each run plans up to the last whole UTC day before its data interval's end, looking "
        f"back {args.backfill_days} day(s) for metric-days that were skipped, waiting or failed; "
        f"ready ones are computed in parallel batches in pool `{spec.pool}` "
        f"({args.pool_slots} slots), each retried {args.retries} time(s). Owners of late or "
        f"skipped metric-days get a digest through connection `{args.smtp_conn_id}`.\n\n"
        "Trigger with params to compute one experiment (`scope`) or some `metrics` only; "
        "`force` recomputes a done day. Lifecycle: `udf status`."
    )


_ON_DEMAND_DOC = """**On-demand metrics for one experiment.** Trigger with the form: the experiment,
the metric type, optionally some metrics and a day range (default: the latest whole day of the
experiment). The run has its own lifecycle scope (the experiment), so it never disturbs the
daily pipelines, and replaces only that experiment's result rows. `force` (on by default)
recomputes days that are already done."""

_RANGE_DOC = """**Range backfill.** Computes a metric type over a day range: by default the full
range of the experiment (first ramp to the end of its last aggregation period, at most
yesterday), or of every experiment when none is given. Only missing, waiting, failed or skipped
metric-days are computed unless `force` is on. The same plan and leased batches as the daily
pipeline, so a concurrent daily run never computes the same metric-day twice."""


# Keep the import surface explicit for `dags/` files and tests.
__all__ = [
    "METRIC_TYPES",
    "ON_DEMAND_DAG_ID",
    "RANGE_BACKFILL_DAG_ID",
    "TOOLS_POOL",
    "Built",
    "UdfConfigWarning",
    "build_dags",
    "build_on_demand_dag",
    "build_pipeline_dag",
    "build_range_backfill_dag",
    "check_configs",
    "register",
    "timetable_for",
]
