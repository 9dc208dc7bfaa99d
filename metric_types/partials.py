"""Reuse across days for ``aggregated``: each computed day's per-user cumulative values, kept.

An ``aggregated`` metric-day is cumulative from the period's start through the end of the
day, so an exposure's values through day ``d`` are its values through an earlier day ``k``
plus its counted events of ``[k.end, d.end)``. After computing a day, batch keeps the day's
**state**: one row per exposure ``(experiment, group, period_start, period_end, user_id)``
of the day's slice with ``t_u`` and

- every count and sum column of the batch (conversion windows included),
- each segment's value on the exposure's first counted event with the field (null: none yet),
- each CUPED covariate (fixed once ``t_u`` is: the events of ``[t_u - window, t_u)``),

taken before the rules that look at the whole day (the multiple-groups exclusion,
winsorizing, quantiles, group totals), which run on it as on the values computed from the
start. Day ``d`` then reads the latest valid state ``k`` (day ``d - 1`` in a daily run), the
activations and events of ``[k.end, d.end)`` only, and, for exposures new since ``k`` in an
experiment with CUPED, the events of their pre-exposure window: a constant amount of raw
data per day however far into the window. With no valid state it starts from nothing at the
periods' start (the full computation). Either way it stores its own state for the next day.

Why it is exact: an exposure's ``t_u`` is its earliest activation in the period, and the
activations of ``[k.end, d.end)`` are all later than a ``t_u`` already known at ``k``, so known
exposures keep their ``t_u`` and new ones come from the new hours alone. Counts and sums
add; a segment's first value is the state's when it has one (its events are earlier). Sums of
``value`` add in another order than one pass over every event, so they may differ from the
computation from the start in the last bits (1e-15 relative), as two Spark runs already may.

**Validity.** A state is stored with its fingerprint: what the batch computes (event types and
windows of every count and sum, segments and their fields, the CUPED covariates and windows,
the plan's experiments), the periods of the day's slice, and digests of every cleaned hour it
was made from (:attr:`metric_types.columnar.HourFile.source`: the archive files' names and
committed sizes, the spam cap, the cleaning): activations from the periods' start, events from
the earliest pre-exposure window's start, through the end of the day. A late activation or an
import into an earlier hour changes that hour's digest, so every later state no longer matches
and is never used: the day starts from the latest state that still matches, or from nothing.
A changed period (a ramp edited) or catalog does the same.

**Storage**, beside the columnar copy (``<columnar>/partials/aggregated/dt=<date>/``): the rows
in a Parquet folder of their own (``run=<id>``, written by Spark), then a stamp
``<spec>.json`` naming the folder, its fingerprint and schema. The stamp is written after the
rows, whole (a temporary file renamed into place on a local disk, one PUT on object stores),
so a write killed at any point leaves the previous stamp or none: a run folder no stamp names
is never read. A folder replaced by a newer stamp is kept for :data:`REPLACED_KEPT_FOR` (a
run that read the old stamp may still be reading it): the new stamp lists it with the time
it was replaced, and a later write of the same stamp deletes those listed longer ago, before
it writes (so a write killed after a deletion leaves a stamp listing a folder already gone,
which a later write skips). Deleting ``partials/`` is always safe.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from metric_types.base import Day, MetricType, PeriodRow
from metric_types.columnar import HourFile, digest
from metric_types.plan import BatchPlan
from metric_types.semantics import Columns
from udf.archive.layout import HOUR_MS
from udf.location import Location
from udf.logging import get_logger

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

FORMAT = 1
FOLDER = "partials/aggregated"
REPLACED_KEPT_FOR = timedelta(days=1)  # longer than any run that read the stamp before
EXPOSURE_KEYS = ("experiment", "group", "period_start", "period_end", "user_id")


def state_columns(plan: BatchPlan) -> Columns:
    """The columns a state keeps: the batch's, with the covariates of every CUPED experiment
    of the plan (a day's own columns are a subset: the same names, fewer covariates)."""
    return Columns.of(plan.metrics, plan.segment_fields, plan.cuped_windows())


def spec_of(plan: BatchPlan, columns: Columns) -> dict[str, Any]:
    """What a state computes, independent of the day."""
    return {
        "format": FORMAT,
        "experiments": sorted(plan.experiments),
        "count": sorted([e, w, c] for (e, w), c in columns.count.items()),
        "total": sorted([e, w, c] for (e, w), c in columns.total.items()),
        "segments": columns.segments,
        "pre": columns.pre,
        "windows": dict(sorted(plan.cuped_windows().items())),
    }


def _hours(hours: Sequence[HourFile], ts_from: int, ts_to: int) -> list[list[Any]] | None:
    """``[hour, source digest]`` of the hours overlapping ``[ts_from, ts_to)``; None when one
    has no digest (then nothing can vouch for a state made from it)."""
    picked = [[h.hour, h.source] for h in hours
              if h.hour * HOUR_MS < ts_to and (h.hour + 1) * HOUR_MS > ts_from]  # fmt: skip
    return None if any(not source for _, source in picked) else picked


def slice_periods(plan: BatchPlan, kind: MetricType, day: Day) -> list[PeriodRow]:
    return [p for p in plan.periods if kind.in_slice(p, day, plan.metrics)]


def read_from(periods: Sequence[PeriodRow], windows: Mapping[str, int], boundary: int) -> int:
    """The earliest event a state needs past ``boundary``: covariates of exposures at or
    after ``boundary`` look back their experiment's window."""
    starts = [
        max(boundary, p.start) - windows[p.experiment] for p in periods if p.experiment in windows
    ]
    return min([boundary, *starts])


def fingerprint(
    spec: dict[str, Any],
    periods: Sequence[PeriodRow],
    day: Day,
    event_hours: Sequence[HourFile],
    activation_hours: Sequence[HourFile],
) -> dict[str, Any] | None:
    """Everything the state of ``day`` (cumulative through its end) depends on."""
    first = min(p.start for p in periods)
    events = _hours(event_hours, read_from(periods, spec["windows"], first), day.end)
    activations = _hours(activation_hours, first, day.end)
    if events is None or activations is None:
        return None
    return {
        "spec": digest(spec),
        "date": day.date.isoformat(),
        "periods": sorted([p.experiment, p.group, p.start, p.end] for p in periods),
        "events": digest(events),
        "activations": digest(activations),
    }


class Partials:
    """The states of one plan under ``root`` (``<columnar>/partials/aggregated``)."""

    def __init__(self, root: Location, plan: BatchPlan, kind: MetricType):
        self.root = root
        self.plan = plan
        self.kind = kind
        self.columns = state_columns(plan)
        self.spec = spec_of(plan, self.columns)
        self.key = digest(self.spec)

    def _stamp_path(self, day: Day) -> str:
        return f"dt={day.date.isoformat()}/{self.key}.json"

    def _expected(
        self, day: Day, event_hours: Sequence[HourFile], activation_hours: Sequence[HourFile]
    ) -> dict[str, Any] | None:
        periods = slice_periods(self.plan, self.kind, day)
        if not periods:
            return None
        return fingerprint(self.spec, periods, day, event_hours, activation_hours)

    def latest(
        self,
        spark: SparkSession,
        day: Day,
        event_hours: Sequence[HourFile],
        activation_hours: Sequence[HourFile],
    ) -> tuple[Day, DataFrame] | None:
        """The latest stored state at or before ``day`` that still matches its inputs (and
        can hold exposures of the day's periods), with its day; None when there is none."""
        from pyspark.sql.types import StructType

        periods = slice_periods(self.plan, self.kind, day)
        first = min(p.start for p in periods)
        k = day
        while k.end > first:
            expected = self._expected(k, event_hours, activation_hours)
            raw = self.root.read_bytes(self._stamp_path(k)) if expected else None
            stamp = _parse(raw)
            if expected and stamp and stamp.get("fingerprint") == expected:
                frame = spark.read.schema(StructType.fromJson(stamp["schema"]))
                return k, frame.parquet(self.root.join(stamp["data"]).spark_uri)
            if stamp:  # there, but made from other inputs: never used
                found = stamp.get("fingerprint") or {}
                differs = sorted(
                    n for n in (expected or {}) if found.get(n) != (expected or {}).get(n)
                )
                log.info("partial.stale", date=k.date.isoformat(), differs=differs)
            k = Day(k.date - timedelta(days=1))
        return None

    def state(
        self,
        spark: SparkSession,
        day: Day,
        event_hours: Sequence[HourFile],
        activation_hours: Sequence[HourFile],
    ) -> DataFrame:
        """The state of ``day``: stored, or advanced from the latest valid one (or from
        nothing) and stored."""
        periods = slice_periods(self.plan, self.kind, day)
        found = self.latest(spark, day, event_hours, activation_hours)
        if found is not None and found[0] == day:
            log.info("partial.reused", date=day.date.isoformat(), since=day.date.isoformat())
            return found[1]
        prev, boundary = None, min(p.start for p in periods)
        if found is not None:
            prev, boundary = found[1], found[0].end
        log.info("partial.advance", date=day.date.isoformat(),
                 since=found[0].date.isoformat() if found else None, read_from_ms=boundary)  # fmt: skip
        state, exposed = advance(spark, prev, boundary, day, periods, event_hours,
                                 activation_hours, self.columns, self.plan.cuped_windows())  # fmt: skip
        try:
            expected = self._expected(day, event_hours, activation_hours)
            if expected is None:  # an hour without a digest: computed, not kept
                return state.localCheckpoint()
            return self._save(spark, day, state, expected)
        finally:
            exposed.unpersist()

    def _save(
        self, spark: SparkSession, day: Day, state: DataFrame, expected: dict[str, Any]
    ) -> DataFrame:
        """Write the rows in a folder of their own, delete the folders the stamp replaced
        long enough ago, then write the stamp that names the new rows."""
        data = f"dt={day.date.isoformat()}/run={uuid.uuid4().hex[:16]}"
        uri = self.root.join(data).spark_uri
        state.write.option("compression", "zstd").parquet(uri)
        path = self._stamp_path(day)
        kept, expired = replaced(_parse(self.root.read_bytes(path)), now_ms())
        for folder in expired:
            self.root.delete_dir(folder)
            log.info("partial.deleted", date=day.date.isoformat(), data=folder)
        stamp = {"fingerprint": expected, "data": data, "schema": json.loads(state.schema.json()),
                 "replaced": kept}  # fmt: skip
        self.root.write_bytes(path, json.dumps(stamp, sort_keys=True).encode())
        log.info("partial.stored", date=day.date.isoformat(), data=data)
        return spark.read.schema(state.schema).parquet(uri)


def now_ms() -> int:
    return int(time.time() * 1000)


def replaced(stamp: dict[str, Any] | None, now: int) -> tuple[list[dict[str, Any]], list[str]]:
    """For a new stamp replacing ``stamp`` at ``now``: the folders it lists as replaced,
    each ``{"data", "at"}`` (the old stamp's own folder from ``now`` on), and the folders
    replaced longer than :data:`REPLACED_KEPT_FOR` ago, to delete."""
    if not stamp:
        return [], []
    listed = [r for r in stamp.get("replaced") or [] if isinstance(r, dict) and "data" in r]
    if isinstance(stamp.get("data"), str):
        listed.append({"data": stamp["data"], "at": now})
    limit = now - REPLACED_KEPT_FOR // timedelta(milliseconds=1)
    expired = [r["data"] for r in listed if r.get("at", now) <= limit]
    return [r for r in listed if r["data"] not in expired], expired


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        stamp = json.loads(raw)
    except ValueError:  # torn by hand or by a broken disk: as good as none
        return None
    return stamp if isinstance(stamp, dict) else None


def advance(
    spark: SparkSession,
    prev: DataFrame | None,
    boundary: int,
    day: Day,
    periods: Sequence[PeriodRow],
    event_hours: Sequence[HourFile],
    activation_hours: Sequence[HourFile],
    columns: Columns,
    windows: Mapping[str, int],
) -> tuple[DataFrame, DataFrame]:
    """The state of ``day`` from ``prev`` (the state through ``boundary``; None: nothing, and
    ``boundary`` is the periods' earliest start), reading only ``[boundary, day.end)``; and
    the checkpointed exposures it is computed from, to unpersist once the state is written."""
    from pyspark.sql import functions as F

    from metric_types.semantics import (
        counted_events,
        covariates,
        first_activations,
        period_frame,
        user_aggregates,
    )
    from metric_types.spark.readers import hours_between, read_activations, read_events

    keys = list(EXPOSURE_KEYS)
    in_slice = period_frame(spark, periods)
    new_ts = (F.col("ts") >= boundary) & (F.col("ts") < day.end)
    activations = read_activations(spark, hours_between(activation_hours, boundary, day.end))
    new = first_activations(activations.where(new_ts), in_slice)
    counts, totals = list(columns.count.values()), list(columns.total.values())
    segments = [columns.segment_column(s) for s in columns.segments]
    pre = list(columns.pre.values())
    kept = [*counts, *totals, *segments, *pre]
    if prev is not None:
        prev = prev.join(F.broadcast(in_slice), keys[:4], "left_semi")  # periods still in slice
        new = new.join(prev.select(*keys), keys, "left_anti")  # known: t_u is the state's
        base = prev.select(*keys, "t_u", *(F.col(c).alias(f"_b_{c}") for c in kept),
                           F.lit(False).alias("_new"))  # fmt: skip
        types = dict(prev.select(*kept).dtypes)
        blank = [F.lit(None).cast(types[c]).alias(f"_b_{c}") for c in kept]
        exposed = base.unionByName(new.select(*keys, "t_u", *blank, F.lit(True).alias("_new")))
    else:
        exposed = new.select(*keys, "t_u", *(F.lit(None).alias(f"_b_{c}") for c in kept),
                             F.lit(True).alias("_new"))  # fmt: skip
    # ids pinned by an eager local checkpoint, as in semantics.exposures
    exposed = exposed.withColumn("exposure_id", F.monotonically_increasing_id()).localCheckpoint()
    try:
        fields = sorted(set(columns.segments.values()))
        events = read_events(spark, hours_between(event_hours, boundary, day.end), fields)
        events = events.where(new_ts)
        if not columns.segments:
            events = events.where(F.col("event_type").isin(columns.event_types))
        out = exposed
        aggs = user_aggregates(columns)
        if aggs:
            counted = counted_events(
                events, exposed.select("exposure_id", "user_id", "t_u", "period_end")
            )
            out = out.join(counted.groupBy("exposure_id").agg(*aggs), "exposure_id", "left")
        else:
            out = out.select("*", *(F.lit(None).alias(c) for c in [*counts, *totals, *segments]))
        if pre:
            newcomers = exposed.where(F.col("_new")).select(
                "exposure_id", "user_id", "t_u", "experiment"
            )
            since = read_from(periods, windows, boundary)
            before = read_events(spark, hours_between(event_hours, since, day.end), [])
            out = out.join(covariates(before, newcomers, windows, columns), "exposure_id", "left")
        counted_pre = {columns.pre[c] for c in columns.count.values() if c in columns.pre}

        def added(c: str, zero: float) -> Any:
            return F.coalesce(F.col(f"_b_{c}"), F.lit(zero)) + F.coalesce(F.col(c), F.lit(zero))

        state = out.select(
            *keys, "t_u",
            *(added(c, 0).cast("long").alias(c) for c in counts),
            *(added(c, 0.0).cast("double").alias(c) for c in totals),
            *(F.coalesce(F.col(f"_b_{c}"), F.col(c)).cast("string").alias(c) for c in segments),
            *(F.coalesce(F.col(f"_b_{p}"), F.col(p), F.lit(0))
              .cast("long" if p in counted_pre else "double").alias(p) for p in pre),
        )  # fmt: skip
    except BaseException:
        exposed.unpersist()
        raise
    return state, exposed


def day_users(state: DataFrame, columns: Columns) -> DataFrame:
    """The slice's users of a day from its state: ``day_in`` 0, ``multi`` (exposed to another
    group of the experiment in a period of the slice), the day's value columns, and segment
    values ``""`` where no counted event had the field (as :func:`semantics.per_user`)."""
    from pyspark.sql import functions as F

    from metric_types.semantics import with_multi

    segments = [columns.segment_column(s) for s in columns.segments]
    values = [*columns.count.values(), *columns.total.values(), *columns.pre.values()]
    users = state.select(
        *EXPOSURE_KEYS, "t_u", F.lit(0).alias("day_in"), *values,
        *(F.coalesce(F.col(c), F.lit("")).alias(c) for c in segments),
    )  # fmt: skip
    return with_multi(users)
