"""Run one batch: a metric type, some dates, some metrics (and experiments), one shared scan.

:func:`compute` is what ``udf compute`` and the Airflow tasks call. Per date it reads the
slice's hours once for every metric of the batch (:mod:`metric_types.semantics`), compares
the groups (:mod:`results.comparisons`) and replaces the batch's slice in the results
store in one step, so a rerun replaces and never adds.

Every row also carries its experiment period's health checks (:mod:`results.health`: SRM
against the ramps' allocation, users exposed to two groups, groups without data) and, on
treatment rows, the MDE at its sample size.

Custom metrics run apart first (:mod:`metric_types.custom.runner`): one that Spark cannot
plan, that fails, runs past its time limit or returns two rows for a user fails alone. The
report names it with the reason, its slice is left as it was, and the others are computed.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from metadata.repository import MetadataStore
from metric_types import registry
from metric_types.base import Day, MetricType
from metric_types.columnar import HourFile, convert
from metric_types.partials import FOLDER as PARTIALS
from metric_types.plan import BatchPlan, MetricPlan, excluding, resolve
from metric_types.semantics import Columns
from results.analysis import look_of
from results.schema import ResultRow, Slice
from udf.home import Home
from udf.location import Location
from udf.logging import get_logger
from udf.settings import Settings, load_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)


@dataclass(frozen=True)
class MetricFailure:
    """A metric-day that was not computed (its previous rows stay), and why, in one line."""

    metric: str
    date: date
    reason: str


@dataclass(frozen=True)
class ComputeReport:
    metric_type: str
    dates: tuple[date, ...]
    metrics: tuple[str, ...]
    experiments: tuple[str, ...] | None
    rows: int
    seconds: float
    failures: tuple[MetricFailure, ...] = ()
    unselected: tuple[str, ...] = ()  # metrics asked for that no experiment selects: no rows

    def failed_on(self, day: date) -> dict[str, str]:
        """The metrics that failed on ``day``, with their reasons."""
        return {f.metric: f.reason for f in self.failures if f.date == day}


@dataclass(frozen=True)
class DayResult:
    rows: list[ResultRow]
    failures: dict[str, str] = field(default_factory=dict)  # metric -> reason


def compute(
    home: Home,
    metric_type: str,
    dates: Sequence[date],
    *,
    metrics: Sequence[str] | None = None,
    experiments: Sequence[str] | None = None,
    settings: Settings | None = None,
) -> ComputeReport:
    """Compute ``metrics`` (default: all of the type) for each date and replace their slices."""
    from metric_types.spark.session import get_session
    from results.stores import open_store

    started = time.monotonic()
    settings = settings or load_settings(home)
    kind = registry.get(metric_type)
    days = [Day(d) for d in sorted(set(dates))]
    if not days:
        raise ValueError("compute needs at least one date")
    until = days[-1].end
    event_hours = convert(
        home, "events", spam_cap=settings.spam_cap, ts_to=until, settings=settings
    )
    activation_hours = convert(
        home, "activations", spam_cap=settings.spam_cap, ts_to=until, settings=settings
    )
    with MetadataStore.for_home(home) as store:
        if metric_type == "aggregated":
            store.register_default_metrics(sorted({t for h in event_hours for t in h.event_types}))
        plan = resolve(
            metric_type, store.metrics(), store.experiments(), store.segments(),
            settings.window_ms, only_metrics=metrics, only_experiments=experiments,
        )  # fmt: skip
    names = tuple(metrics) if metrics is not None else tuple(m.name for m in plan.metrics)
    planned = {m.name for m in plan.metrics}
    rows = 0
    failures: list[MetricFailure] = []
    if names:
        spark = get_session(settings.spark) if planned else None
        results = open_store(home, settings)
        scope = tuple(experiments) if experiments is not None else None
        partials = None
        if settings.batch.reuse_days:
            partials = settings.columnar_location(home).join(*PARTIALS.split("/"))
        try:
            for day in days:
                result = DayResult([])  # nothing selected: the slice is emptied
                if spark is not None:
                    result = compute_day(
                        spark, plan, kind, day, event_hours, activation_hours,
                        custom_timeout_seconds=settings.custom_timeout_seconds, partials=partials,
                    )  # fmt: skip
                for metric, reason in result.failures.items():
                    log.info("metric failed", metric=metric, date=day.date.isoformat(),
                             reason=reason)  # fmt: skip
                    failures.append(MetricFailure(metric, day.date, reason))
                kept = tuple(n for n in names if n not in result.failures)
                if kept:
                    slice_ = Slice("batch", metric_type, day.date, kept, scope)
                    rows += results.replace(slice_, result.rows)
                log.info("computed", metric_type=metric_type, date=day.date.isoformat(),
                         metrics=len(kept), rows=len(result.rows))  # fmt: skip
        finally:
            results.close()
    return ComputeReport(
        metric_type, tuple(d.date for d in days), names,
        tuple(experiments) if experiments is not None else None, rows,
        time.monotonic() - started, tuple(failures),
        tuple(n for n in names if n not in planned),
    )  # fmt: skip


def compute_day(
    spark: SparkSession,
    plan: BatchPlan,
    kind: MetricType,
    day: Day,
    event_hours: Sequence[HourFile],
    activation_hours: Sequence[HourFile],
    *,
    custom_timeout_seconds: float,
    partials: Location | None = None,
) -> DayResult:
    """The result rows of every metric of ``plan`` for ``day`` (not yet stored), and the
    custom metrics that failed, with their reasons.

    With ``partials`` (a folder), ``aggregated`` starts from the latest stored per-user
    values that still match their inputs and reads only the hours since
    (:mod:`metric_types.partials`); the rows are the same.
    """
    from pyspark.sql import functions as F

    from metric_types.custom.runner import CustomValues, custom_values, standard_views
    from metric_types.quantiles import quantile_cells
    from metric_types.semantics import (
        counted_events,
        covariates,
        exposures,
        group_totals,
        per_user,
        period_frame,
        winsorize,
    )
    from metric_types.spark.readers import hours_between, read_activations, read_events
    from results.comparisons import compare_groups
    from results.health import GroupCell, allocation_intervals, health_verdicts
    from stats.quantile import z_of

    periods = [p for p in plan.periods if kind.in_slice(p, day, plan.metrics)]
    if not periods or not plan.metrics:
        return DayResult([])
    first = min(p.start for p in periods)
    last = min(max(p.end for p in periods), day.end)
    windows = {e: w for e, w in plan.cuped_windows().items()
               if any(p.experiment == e for p in periods)}  # fmt: skip
    specs = plan.specs
    excluded = list(excluding(specs))
    intervals = allocation_intervals(plan.ramps)
    custom = CustomValues()
    quantiles: dict[tuple[Any, ...], dict[str, float]] = {}
    multiple: dict[tuple[str, str, int, int], int] = {}
    reusing = (
        partials is not None
        and kind.name == "aggregated"
        and not any(m.is_custom for m in plan.metrics)
    )
    exposed = None
    try:
        columns = Columns.of(plan.metrics, plan.segment_fields, windows)
        if reusing:  # from the previous day's per-user values (metric_types.partials)
            from metric_types.partials import Partials, day_users

            assert partials is not None
            state = Partials(partials, plan, kind).state(spark, day, event_hours, activation_hours)
            users = day_users(state, columns)
        else:
            activations = read_activations(spark, hours_between(activation_hours, first, last))
            activations = activations.where(F.col("experiment").isin(list(plan.experiments)))
            exposed = exposures(activations, period_frame(spark, periods))
            users = kind.users(exposed, day, plan.metrics)
        multiple = _multiple_groups(users)
        if excluded:  # users exposed to two groups, left out where the experiment says so
            users = users.where(~(F.col("multi") & F.col("experiment").isin(excluded)))
        if reusing:
            values = users  # the state holds each user's values
        else:
            assert exposed is not None
            fields = sorted(set(columns.segments.values()))
            events = read_events(
                spark, hours_between(event_hours, kind.events_from(day, first), last), fields
            )
            has_custom = any(m.is_custom for m in plan.metrics)
            if not columns.segments and not has_custom:
                # Segments and custom code see every counted event; plain metrics only theirs.
                events = events.where(F.col("event_type").isin(columns.event_types))
            # custom code groups by user: its events are joined in partitions of users
            counted = kind.events(counted_events(events, exposed, by_user=has_custom), day,
                                  plan.metrics)  # fmt: skip
            if has_custom:
                views = standard_views(users, counted)

                def window_views(window_ms: int) -> dict[str, Any]:
                    return standard_views(
                        users, counted.where(F.col("ts") < F.col("t_u") + window_ms)
                    )

                custom = custom_values(
                    spark, plan.metrics, views, custom_timeout_seconds, window_views
                )
                kept = {m: c for m, c in columns.custom.items() if m not in custom.failures}
                columns = replace(columns, custom=kept)
            pre = None
            if columns.pre:
                since = min(
                    p.start - windows[p.experiment] for p in periods if p.experiment in windows
                )
                before = read_events(spark, hours_between(event_hours, since, last), [])
                pre = covariates(before, exposed, windows, columns)
            values = per_user(users, counted, columns, custom.frames, pre)
        values = winsorize(values, columns)
        metrics = [m for m in plan.metrics if m.name not in custom.failures]
        if any(m.quantile is not None for m in metrics):
            values = values.persist()
            z = {e: float(z_of(spec.alpha)) for e, spec in specs.items()}
            quantiles = quantile_cells(values, columns, metrics, z)
        totals = group_totals(values, columns).collect()
        srm_counts = _interval_counts(users, intervals)
        values.unpersist()
    finally:
        if exposed is not None:
            exposed.unpersist()
        custom.unpersist()
    computed_at = int(datetime.now(UTC).timestamp() * 1000)
    total_dicts = [t.asDict() for t in totals]
    period_groups: dict[tuple[str, int], list[str]] = {}
    for p in periods:
        period_groups.setdefault((p.experiment, p.start), []).append(p.group)
    srm_alpha = {e: spec.srm_alpha for e, spec in specs.items()}
    # The health checks of each cell, from its groups' totals: every row of a group carries
    # the group's users (health_rows would read the same numbers off the rows).
    cells = (
        GroupCell(t["experiment"], t["period_start"], t["day_in"], t["group"], t["exposed"],
                  multiple.get((t["experiment"], t["group"], t["period_start"], t["day_in"]), 0))
        for t in total_dicts if t["segment"] == ""
    )  # fmt: skip
    health = health_verdicts(cells, srm_counts, intervals, period_groups, srm_alpha)
    rows = [
        row
        for total in total_dicts
        for m in metrics
        if (row := _row(m, total, columns, plan.metric_type, day, computed_at, windows, quantiles,
                        multiple, health))
    ]  # fmt: skip
    return DayResult(compare_groups(rows, plan.controls, plan.analysis), dict(custom.failures))


def _multiple_groups(users: Any) -> dict[tuple[str, str, int, int], int]:
    """Users of each (experiment, group, period_start, day_in) also exposed to another group."""
    from pyspark.sql import functions as F

    keys = ("experiment", "group", "period_start", "day_in")
    counted = users.where(F.col("multi")).groupBy(*keys).count().collect()
    return {tuple(r[k] for k in keys): r["count"] for r in counted}  # type: ignore[misc]


def _interval_counts(
    users: Any, intervals: Sequence[Any]
) -> dict[tuple[str, int, int], dict[int, int]]:
    """The slice's users per (experiment, period_start, day_in) and allocation interval."""
    from pyspark.sql import functions as F

    out: dict[tuple[str, int, int], dict[int, int]] = {}
    if not intervals:
        return out
    spark = users.sparkSession
    frame = spark.createDataFrame(
        [(i.experiment, i.index, i.start, i.end) for i in intervals],
        "experiment string, idx int, i_start long, i_end long",
    )
    inside = users.join(F.broadcast(frame), "experiment").where(
        (F.col("t_u") >= F.col("i_start")) & (F.col("t_u") < F.col("i_end"))
    )
    for r in inside.groupBy("experiment", "period_start", "day_in", "idx").count().collect():
        out.setdefault((r["experiment"], r["period_start"], r["day_in"]), {})[r["idx"]] = r["count"]
    return out


def _row(
    m: MetricPlan,
    t: dict[str, Any],
    columns: Columns,
    metric_type: str,
    day: Day,
    computed_at: int,
    cuped: Collection[str] = (),
    quantiles: dict[tuple[Any, ...], dict[str, float]] | None = None,
    multiple: dict[tuple[str, str, int, int], int] | None = None,
    health: dict[tuple[str, int, int], dict[str, Any]] | None = None,
) -> ResultRow | None:
    """The row of metric ``m`` in group total ``t``, or None when ``m`` does not cover it.

    ``cuped`` names the experiments whose rows carry the covariate's sums; ``health`` holds
    each (experiment, period_start, day_in) cell's health columns.
    """
    if t["experiment"] not in m.experiment_set:
        return None
    if t["segment"] and t["segment"] not in m.segments_of(t["experiment"]):
        return None
    if (t["day_in"] in m.days) != (metric_type == "days_in"):
        return None
    group_cell = (t["experiment"], t["group"], t["period_start"], t["day_in"])
    extra: dict[str, Any] = {"multiple_groups": (multiple or {}).get(group_cell, 0)}
    extra.update((health or {}).get((t["experiment"], t["period_start"], t["day_in"]), {}))
    if m.is_custom:
        col = columns.custom[m.name]
        volume = propensity = t[f"{col}_users"]
    else:
        assert m.numerator is not None
        counts = columns.count[m.numerator.events]
        volume, propensity = t[f"{counts}_sum"], t[f"{counts}_users"]
        col = columns.value(m.numerator)
        if m.denominator is not None:
            den = columns.value(m.denominator)
            extra.update({
                "den_sum": float(t[f"{den}_sum"]),
                "den_sum_sq": float(t[f"{den}_sum_sq"]),
                "sum_xy": float(t[f"{col}_x_{den}"]),
            })  # fmt: skip
        elif t["experiment"] in cuped and col in columns.pre and m.has_covariate:
            pre = columns.pre[col]
            extra.update({
                "pre_sum": float(t[f"{pre}_sum"]),
                "pre_sum_sq": float(t[f"{pre}_sum_sq"]),
                "pre_sum_xy": float(t[f"{col}_x_{pre}"]),
            })  # fmt: skip
    if m.name in columns.capped_of:
        col = columns.capped_of[m.name]
        extra["cap"] = float(t[f"{col}_cap"])
    if m.quantile is not None:
        cell = (m.name, *(t[k] for k in ("experiment", "group", "period_start", "period_end",
                                          "day_in", "segment", "segment_value")))  # fmt: skip
        found = (quantiles or {}).get(cell, {})
        extra.update({k: found.get(k) for k in ("quantile", "quantile_low", "quantile_high")})
    return ResultRow(
        experiment=t["experiment"], group=t["group"], metric=m.name, metric_type=metric_type,
        period_start=t["period_start"], period_end=t["period_end"], date=day.date.isoformat(),
        day_in=t["day_in"], look=look_of(day.date.isoformat(), t["period_start"]),
        segment=t["segment"], segment_value=t["segment_value"],
        exposed=t["exposed"], volume=int(volume), propensity=int(propensity), n=t["exposed"],
        sum=float(t[f"{col}_sum"]), sum_sq=float(t[f"{col}_sum_sq"]), **extra,
        source="batch", computed_at=computed_at,
    )  # fmt: skip
