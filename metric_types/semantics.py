"""the contract §3 as Spark transformations, shared by every metric type.

The steps, in order (docs/metrics.md has the exact rules):

1. clean events (duplicates and spam cap: done per archive hour, :mod:`metric_types.columnar`);
2. :func:`exposures`: activations inside a period, the earliest per (experiment, group, user);
3. :func:`counted_events`: events of exposed users with ``t_u <= ts < period end``;
4. the metric type narrows users and events to its slice of the day (:mod:`metric_types.types`);
5. :func:`per_user`: one row per user of the slice with every needed per-user value and the
   user's segment values, zeros for users without events, and, for experiments that ask
   for CUPED, each value's pre-exposure covariate (:func:`covariates`);
6. :func:`winsorize`: winsorized metrics' capped copies of their values (docs/metrics.md §12);
7. :func:`group_totals`: per group the sufficient statistics of every needed value
   (quantile metrics also sort their values: :mod:`metric_types.quantiles`).

A metric with a conversion window counts only events before ``t_u + window`` in step 5
(:func:`counting`); ``multi`` on the exposures marks users exposed to two groups.

One pass computes every metric of a batch: metrics only pick columns of the totals, so the
work grows with the event types and ratio pairs the batch needs, not with its metric count.
Exposures are small next to events (one row per exposed user and period) and are
broadcast, so the events are read once and never shuffled for the join (up to
:data:`BROADCAST_EXPOSURES`; beyond, a sort-merge join).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metric_types.plan import MetricPlan, Value

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from metric_types.base import PeriodRow

GROUP_KEYS = ("experiment", "group", "period_start", "period_end", "day_in")
BROADCAST_EXPOSURES = 2_000_000  # rows; a slice with more joins its events by a shuffle
EXPOSURES_PER_PARTITION = 50_000  # custom code's counted events: partitions by user_id
USER_KEYS = ("exposure_id", "day_in")  # one exposure is one (experiment, group, period, user)


EventKey = tuple[str, int]  # (event type, conversion window in ms; 0 for none)


@dataclass(frozen=True)
class Columns:
    """The per-user columns a batch needs, named positionally (event types are free text).

    ``count[(e, w)]`` is the column of the count of event type ``e`` (counted only before
    ``t_u + w`` when ``w``, a conversion window), ``total[(e, w)]`` of its sum of ``value``;
    ``custom[m]`` the value of custom metric ``m``; ``pairs`` the products whose sums ratio
    metrics need; ``segments`` the segment names with their event fields; ``pre[c]`` the
    CUPED covariate of value column ``c`` (count and sum metrics of the experiments that ask
    for CUPED); ``capped[w]`` the winsorized copy ``w`` of a value column, as
    ``(column, percentile)``, and ``capped_of[m]`` the copy metric ``m`` uses.
    """

    count: dict[EventKey, str]
    total: dict[EventKey, str]
    custom: dict[str, str]
    pairs: tuple[tuple[str, str], ...]
    segments: dict[str, str]
    pre: dict[str, str]
    capped: dict[str, tuple[str, float]] = field(default_factory=dict)
    capped_of: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        metrics: Sequence[MetricPlan],
        segment_fields: dict[str, str],
        cuped: Collection[str] = (),
    ) -> Columns:
        values: list[Value] = []
        for m in metrics:
            values.extend(v for v in (m.numerator, m.denominator) if v is not None)
        kinds = sorted({v.events for v in values})
        count = {k: f"n{i}" for i, k in enumerate(kinds)}
        summed = sorted({v.events for v in values if v.statistic == "sum"})
        total = {k: f"s{kinds.index(k)}" for k in summed}
        custom = {m.name: f"u{i}" for i, m in enumerate(m for m in metrics if m.is_custom)}
        columns = cls(count, total, custom, (), dict(sorted(segment_fields.items())), {})
        pairs = {
            (columns.value(m.numerator), columns.value(m.denominator))
            for m in metrics if m.numerator is not None and m.denominator is not None
        }  # fmt: skip
        adjusted = sorted(
            {columns.value(m.numerator) for m in metrics
             if m.numerator is not None and m.has_covariate and set(m.experiments) & set(cuped)}
        )  # fmt: skip
        pre = {c: f"p_{c}" for c in adjusted}
        pairs |= {(c, p) for c, p in pre.items()}
        wanted = sorted(
            {(columns.plain_column(m), m.winsorize) for m in metrics if m.winsorize is not None}
        )
        capped = {f"w{i}": (c, pct) for i, (c, pct) in enumerate(wanted)}
        by_source = {v: k for k, v in capped.items()}
        capped_of = {m.name: by_source[(columns.plain_column(m), m.winsorize)]
                     for m in metrics if m.winsorize is not None}  # fmt: skip
        return cls(count, total, custom, tuple(sorted(pairs)), columns.segments, pre, capped,
                   capped_of)  # fmt: skip

    def value(self, v: Value) -> str:
        return self.total[v.events] if v.statistic == "sum" else self.count[v.events]

    def plain_column(self, m: MetricPlan) -> str:
        """The per-user value column of a count, sum or custom metric, before any cap."""
        if m.is_custom:
            return self.custom[m.name]
        assert m.numerator is not None
        return self.value(m.numerator)

    def metric_column(self, m: MetricPlan) -> str:
        """The column whose sums are metric ``m``'s ``sum`` and ``sum_sq`` (winsorized or not)."""
        return self.capped_of.get(m.name) or self.plain_column(m)

    @property
    def values(self) -> list[str]:
        """Every per-user value column whose sum and sum of squares are needed."""
        return sorted(
            {*self.count.values(), *self.total.values(), *self.custom.values(), *self.pre.values(),
             *self.capped}
        )  # fmt: skip

    @property
    def pre_event_types(self) -> list[str]:
        """The event types the CUPED covariates count or sum."""
        by_column = [*self.count.items(), *self.total.items()]
        return sorted({e for (e, _), column in by_column if column in self.pre})

    @property
    def event_types(self) -> list[str]:
        return sorted({e for e, _ in self.count})

    def segment_column(self, name: str) -> str:
        return f"g_{list(self.segments).index(name)}"


def exposures(activations: DataFrame, periods: DataFrame) -> DataFrame:
    """Exposure per (experiment, group, period, user): the earliest activation inside it.

    ``multi`` marks a user exposed to more than one group of the same experiment (in any
    period of the frame). Each exposure gets an integer ``exposure_id`` so that the per-user work groups and joins
    on one number instead of four columns. The ids are pinned by an eager local checkpoint:
    a recomputed partition would otherwise number its rows anew.
    """
    from pyspark.sql import functions as F

    exposed = with_multi(first_activations(activations, periods))
    return exposed.withColumn("exposure_id", F.monotonically_increasing_id()).localCheckpoint()


def period_frame(spark: SparkSession, periods: Sequence[PeriodRow]) -> DataFrame:
    """The periods as a small frame: ``experiment, group, period_start, period_end``."""
    return spark.createDataFrame(
        [(p.experiment, p.group, p.start, p.end) for p in periods],
        "experiment string, `group` string, period_start long, period_end long",
    )


def first_activations(activations: DataFrame, periods: DataFrame) -> DataFrame:
    """``t_u`` per (experiment, group, period, user): the earliest activation inside the period."""
    from pyspark.sql import functions as F

    inside = activations.join(F.broadcast(periods), ["experiment", "group"]).where(
        (F.col("ts") >= F.col("period_start")) & (F.col("ts") < F.col("period_end"))
    )
    grouped = inside.groupBy("experiment", "group", "period_start", "period_end", "user_id")
    return grouped.agg(F.min("ts").alias("t_u"))


def with_multi(exposed: DataFrame) -> DataFrame:
    """``multi``: the user is exposed to more than one group of the experiment (in any period
    of the frame)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    same_user = Window.partitionBy("experiment", "user_id")
    return exposed.withColumn("multi", F.size(F.collect_set("group").over(same_user)) > 1)


def counted_events(events: DataFrame, exposed: DataFrame, *, by_user: bool = False) -> DataFrame:
    """Events of exposed users from their exposure to their period's end, one row per
    (event, exposure): a user exposed in two experiments counts for both.

    Up to :data:`BROADCAST_EXPOSURES` exposures are broadcast (the events are never
    shuffled); more are joined by a sort-merge join: at 300 groups and 20 M events a day,
    the 11 M activations of a slice gave more exposures than a 4 GiB driver could broadcast.

    ``by_user`` (custom code's views) partitions both sides by ``user_id`` instead, into
    partitions of about :data:`EXPOSURES_PER_PARTITION` exposures: any aggregation whose
    keys include ``user_id`` (a custom metric's ``GROUP BY experiment, group, period_start,
    user_id``, its ``COUNT(DISTINCT ...)`` too) then runs inside each partition, with no
    further shuffle and a hash table that fits in memory. After a broadcast join it would
    aggregate every event split's rows of all users at once (one row per exposure and
    distinct value: tens of millions) and spill.
    """
    from pyspark.sql import functions as F

    exposures = exposed.count()
    if by_user:
        shuffle = int(exposed.sparkSession.conf.get("spark.sql.shuffle.partitions") or 1)
        n = max(shuffle, -(-exposures // EXPOSURES_PER_PARTITION))
        left = events.repartition(n, "user_id")
        joined = left.join(exposed.repartition(n, "user_id").hint("merge"), "user_id")
    elif exposures <= BROADCAST_EXPOSURES:
        joined = events.join(F.broadcast(exposed), "user_id")
    else:
        joined = events.join(exposed.hint("merge"), "user_id")
    return joined.where((F.col("ts") >= F.col("t_u")) & (F.col("ts") < F.col("period_end")))


def covariates(
    events: DataFrame, exposed: DataFrame, windows: Mapping[str, int], columns: Columns
) -> DataFrame:
    """Each CUPED covariate per exposure: the metric's value over the user's clean events in
    ``[t_u - window, t_u)``, ``window`` being the experiment's (docs/metrics.md §8).

    One row per exposure of the experiments in ``windows`` with at least one such event;
    ``per_user`` fills the others with 0.
    """
    from pyspark.sql import functions as F

    events = events.where(F.col("event_type").isin(columns.pre_event_types))
    spark = exposed.sparkSession
    frame = spark.createDataFrame(list(windows.items()), "experiment string, window_ms long")
    before = exposed.join(F.broadcast(frame), "experiment").select(
        "exposure_id", "user_id", "t_u", "window_ms"
    )
    joined = events.join(F.broadcast(before), "user_id").where(
        (F.col("ts") >= F.col("t_u") - F.col("window_ms")) & (F.col("ts") < F.col("t_u"))
    )
    aggs: list[Column] = []
    for (event_type, _), name in columns.count.items():
        if name in columns.pre:
            is_type = F.when(F.col("event_type") == event_type, 1).otherwise(0)
            aggs.append(F.sum(is_type).alias(columns.pre[name]))
    for (event_type, _), name in columns.total.items():
        if name in columns.pre:
            is_type = F.col("event_type") == event_type
            aggs.append(
                F.sum(F.when(is_type, F.col("value")).otherwise(0.0)).alias(columns.pre[name])
            )
    return joined.groupBy("exposure_id").agg(*aggs)


def per_user(
    users: DataFrame,
    counted: DataFrame,
    columns: Columns,
    custom: dict[str, DataFrame],
    pre: DataFrame | None = None,
) -> DataFrame:
    """One row per user of the slice: every value column (0 without events) and segments.

    A user's segment value is the field's value on the user's first counted event of the
    slice, by ``(ts, event_type)``, that has the field; ``""`` when none has. ``pre`` holds
    the covariates of :func:`covariates` (0 for an exposure it does not list).
    """
    from pyspark.sql import functions as F

    aggs = user_aggregates(columns)
    out = users.select(*USER_KEYS, *GROUP_KEYS[:-1], "user_id")
    if aggs:
        values = counted.groupBy(*USER_KEYS).agg(*aggs)
        out = out.join(values, list(USER_KEYS), "left")
    for metric, frame in custom.items():
        keys = ["experiment", "group", "period_start", "user_id"]
        value = frame.select(*keys, F.col("value").cast("double").alias(columns.custom[metric]))
        out = out.join(value, keys, "left")
    if pre is not None:
        out = out.join(pre, "exposure_id", "left")
    zeros: dict[str, int | float | str] = {c: 0 for c in columns.count.values()}
    zeros.update({c: 0.0 for c in [*columns.total.values(), *columns.custom.values()]})
    counts = set(columns.count.values())
    zeros.update({p: 0 if c in counts else 0.0 for c, p in columns.pre.items()})
    blanks = {columns.segment_column(s): "" for s in columns.segments}
    return out.fillna({**zeros, **blanks})  # type: ignore[arg-type]


def user_aggregates(columns: Columns) -> list[Column]:
    """The per-user aggregates of counted events: each count and sum column, and each
    segment's value on the first counted event (by ``(ts, event_type)``) that has the field,
    null when none has."""
    from pyspark.sql import functions as F

    aggs: list[Column] = []
    for key, name in columns.count.items():
        aggs.append(F.sum(F.when(counting(*key), 1).otherwise(0)).alias(name))
    for key, name in columns.total.items():
        aggs.append(F.sum(F.when(counting(*key), F.col("value")).otherwise(0.0)).alias(name))
    for segment, field_name in columns.segments.items():
        has = F.col(field_name).isNotNull()
        first = F.when(has, F.struct("ts", "event_type", F.col(field_name)))
        aggs.append(F.min(first).getField(field_name).alias(columns.segment_column(segment)))
    return aggs


def counting(event_type: str, window_ms: int) -> Column:
    """Whether a counted event counts for a value of ``event_type`` with that window."""
    from pyspark.sql import functions as F

    is_type = F.col("event_type") == event_type
    return is_type & (F.col("ts") < F.col("t_u") + window_ms) if window_ms else is_type


def winsorize(users: DataFrame, columns: Columns) -> DataFrame:
    """Add each capped column of ``columns``: its value column capped at the percentile of
    the pooled values of every group of the experiment period (and ``day_in``), with the
    cap itself in ``<column>_cap`` (docs/metrics.md §12). Exact: Spark's ``percentile`` is
    the linearly interpolated one, numpy's default."""
    from pyspark.sql import functions as F

    if not columns.capped:
        return users
    keys = ["experiment", "period_start", "day_in"]
    caps = users.groupBy(*keys).agg(
        *(F.percentile(F.col(source).cast("double"), pct / 100.0).alias(f"{name}_cap")
          for name, (source, pct) in columns.capped.items())
    )  # fmt: skip
    out = users.join(F.broadcast(caps), keys)
    for name, (source, _) in columns.capped.items():
        out = out.withColumn(name, F.least(F.col(source).cast("double"), F.col(f"{name}_cap")))
    return out


def with_segments(users: DataFrame, columns: Columns) -> DataFrame:
    """Each user once per breakdown: overall (segment ``""``) and once per segment."""
    from pyspark.sql import functions as F

    choices = [F.struct(F.lit("").alias("segment"), F.lit("").alias("segment_value"))]
    for segment in columns.segments:
        value = F.col(columns.segment_column(segment))
        choices.append(F.struct(F.lit(segment).alias("segment"), value.alias("segment_value")))
    return (
        users.withColumn("_seg", F.explode(F.array(*choices)))
        .select("*", "_seg.segment", "_seg.segment_value")
        .drop("_seg")
    )


def group_totals(users: DataFrame, columns: Columns) -> DataFrame:
    """Sufficient statistics per group and segment value (overall rows have segment ``""``)."""
    from pyspark.sql import functions as F

    exploded = with_segments(users, columns)
    aggs: list[Column] = [F.count(F.lit(1)).alias("exposed")]
    for name in columns.capped:
        aggs.append(F.max(f"{name}_cap").alias(f"{name}_cap"))
    for name in columns.count.values():
        aggs.append(F.sum(F.when(F.col(name) > 0, 1).otherwise(0)).alias(f"{name}_users"))
    for name in columns.custom.values():
        aggs.append(F.sum(F.when(F.col(name) != 0, 1).otherwise(0)).alias(f"{name}_users"))
    for name in columns.values:
        aggs.append(F.sum(name).alias(f"{name}_sum"))
        aggs.append(F.sum(F.col(name) * F.col(name)).alias(f"{name}_sum_sq"))
    for a, b in columns.pairs:
        aggs.append(F.sum(F.col(a) * F.col(b)).alias(f"{a}_x_{b}"))
    return exploded.groupBy(*GROUP_KEYS, "segment", "segment_value").agg(*aggs)
