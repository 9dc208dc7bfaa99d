"""Custom metrics in Spark, each on its own: planned, time-limited, one value per user.

A batch computes all its metrics in one shared pass (:mod:`metric_types.compute`), but a
custom metric is user code, so its values are computed apart first, and whatever goes
wrong fails that metric alone (its metric-day ``failed``, with a one-line reason) while the
batch computes the others:

1. **plan**: Spark analyses the SQL (as the guard re-rendered it) over the slice's views,
   or the function builds its DataFrame; an unknown column or function, a type error, or
   an output column of the wrong type fails here, before any job runs. :class:`Planner`
   does the same against empty views, with no data at all (``udf config validate --plan``).
2. **run under a time limit**: the per-user values are materialised (a local checkpoint)
   in Spark jobs tagged for the metric, cancelled when the metric's limit passes
   (:func:`metric_types.spark.session.time_limit`).
3. **one value per (experiment, group, period, user)**, the contract's rule: a second row
   for a user would count the user twice in ``exposed`` and ``n``, so such a metric is
   refused, naming one of those users. A plan that guarantees it (a ``GROUP BY`` of the
   keys, :func:`metric_types.spark.plan_keys.unique_on`) is not checked again on the data.

A function's own code is shipped to a cluster's Python workers first
(:mod:`metric_types.spark.shipping`). pyspark is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metric_types.custom.sql_guard import OUTPUT_COLUMNS, check_sql
from udf.errors import CustomMetricError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from metric_types.plan import MetricPlan

# The standard views (docs/metrics.md §9): column, Spark type, and the column of the
# slice's frames it comes from. Compute and the planner both build them from here.
VIEW_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "exposures": (
        ("experiment", "string", "experiment"),
        ("group", "string", "group"),
        ("period_start", "bigint", "period_start"),
        ("period_end", "bigint", "period_end"),
        ("user_id", "bigint", "user_id"),
        ("exposure_ts", "bigint", "t_u"),
    ),
    "counted_events": (
        ("experiment", "string", "experiment"),
        ("group", "string", "group"),
        ("period_start", "bigint", "period_start"),
        ("user_id", "bigint", "user_id"),
        ("event_type", "string", "event_type"),
        ("ts", "bigint", "ts"),
        ("value", "double", "value"),
    ),
}
KEYS = OUTPUT_COLUMNS[:-1]  # experiment, group, period_start, user_id: one value per key
_TEXT, _INTEGER, _NUMBER = "a string", "an integer", "a number"
_OUTPUT_KINDS = dict(zip(OUTPUT_COLUMNS, (_TEXT, _TEXT, _INTEGER, _INTEGER, _NUMBER), strict=True))


@dataclass
class CustomValues:
    """The per-user values of a batch's custom metrics, and the metrics that failed, why."""

    frames: dict[str, DataFrame] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def unpersist(self) -> None:
        for frame in self.frames.values():
            frame.unpersist()


def standard_views(users: DataFrame, counted: DataFrame) -> dict[str, DataFrame]:
    """The views custom code reads, from the slice's users and counted events."""
    sources = {"exposures": users, "counted_events": counted}
    return {name: _view(sources[name], columns) for name, columns in VIEW_COLUMNS.items()}


def _view(frame: DataFrame, columns: Sequence[tuple[str, str, str]]) -> DataFrame:
    from pyspark.sql import functions as F

    return frame.select(*(F.col(source).cast(kind).alias(name) for name, kind, source in columns))


def view_schema(name: str) -> str:
    """A view's schema as Spark DDL, e.g. ``experiment string, `group` string, ...``."""
    return ", ".join(f"`{column}` {kind}" for column, kind, _ in VIEW_COLUMNS[name])


def custom_values(
    spark: SparkSession,
    metrics: Sequence[MetricPlan],
    views: dict[str, DataFrame],
    default_timeout_seconds: float,
    window_views: Callable[[int], dict[str, DataFrame]] | None = None,
) -> CustomValues:
    """Plan and run each custom metric of ``metrics`` alone; collect values and failures.

    A metric with a conversion window sees ``window_views(window_ms)`` instead of ``views``:
    the same views over only the events before each user's ``exposure_ts + window_ms``.
    """
    out = CustomValues()
    custom = [m for m in metrics if m.is_custom]
    if not custom:
        return out
    for m in custom:
        mine = views if not m.window_ms or window_views is None else window_views(m.window_ms)
        for name, frame in mine.items():
            frame.createOrReplaceTempView(name)
        try:
            out.frames[m.name] = _values(
                spark, m, mine, m.timeout_seconds or default_timeout_seconds
            )
        except CustomMetricError as exc:
            out.failures[m.name] = " ".join(str(exc).split())
    return out


def _values(
    spark: SparkSession, m: MetricPlan, views: dict[str, DataFrame], seconds: float
) -> DataFrame:
    from pyspark.sql import functions as F

    from metric_types.spark.plan_keys import unique_on
    from metric_types.spark.session import time_limit

    what = f"custom metric {m.name!r}"
    # The limit covers the function's own Spark jobs too, should it run any.
    with time_limit(spark, seconds, label=f"udf-custom-{m.name}") as limit:
        try:
            frame = _planned(spark, m, views, what)
            keyed = frame.select(*KEYS, F.col("value").cast("double").alias("value")).where(
                F.col("experiment").isin(list(m.experiments))
            )
            values = keyed.localCheckpoint(eager=True)
            # A GROUP BY of the keys (the plan says so) needs no shuffle to confirm it.
            twice: list[Any] = []
            if not unique_on(keyed, range(len(KEYS))):
                twice = values.groupBy(*KEYS).count().where(F.col("count") > 1).limit(1).collect()
        except Exception as exc:  # the user's query failing at run time (or cancelled)
            if limit.expired:
                raise CustomMetricError(
                    f"{what} ran longer than its time limit of {seconds:g} s and was cancelled"
                ) from None
            if isinstance(exc, CustomMetricError):
                raise
            raise CustomMetricError(f"{what} failed in Spark: {spark_reason(exc)}") from None
    if twice:
        values.unpersist()
        row = twice[0]
        user = ", ".join(f"{key} {row[key]}" for key in KEYS)
        raise CustomMetricError(
            f"{what} returns {row['count']} rows for one user ({user}); it must return one "
            "value per (experiment, group, period, user)"
        )
    return values


def _planned(
    spark: SparkSession, m: MetricPlan, views: dict[str, DataFrame], what: str
) -> DataFrame:
    """The metric's DataFrame, analysed by Spark and checked for its output columns."""
    from metric_types.custom.functions import check_result_columns, load_function, split_path
    from metric_types.spark.shipping import ship_module

    if m.sql is not None:
        sql = check_sql(m.sql)
        try:
            frame = spark.sql(sql)
        except Exception as exc:  # analysis: unknown names, types, functions
            raise CustomMetricError(
                f"{what}: Spark cannot plan its SQL: {spark_reason(exc)}"
            ) from None
    else:
        path = m.function or ""
        function = load_function(path)
        try:
            ship_module(spark, split_path(path)[0])  # a cluster's Python workers import it too
        except Exception as exc:  # a folder that cannot be read or zipped, a server refusing it
            raise CustomMetricError(
                f"{what}: shipping the code of {path!r} to the cluster failed: "
                f"{type(exc).__name__}: {spark_reason(exc)}"
            ) from None
        try:
            frame = function(dict(views))
        except Exception as exc:  # the user's function raising
            raise CustomMetricError(
                f"{what}: function {path!r} raised {type(exc).__name__}: {spark_reason(exc)}"
            ) from None
        if not hasattr(frame, "schema"):
            raise CustomMetricError(
                f"{what}: function {path!r} returned a {type(frame).__name__}, not a DataFrame"
            )
        check_result_columns(path, frame.columns)
    problem = output_type_problem(frame.schema)
    if problem:
        raise CustomMetricError(f"{what} {problem}")
    return frame


def output_type_problem(schema: StructType) -> str | None:
    """Why the output columns' types do not fit (strings, integers, a number), or None."""
    from pyspark.sql.types import (
        BooleanType,
        CharType,
        IntegralType,
        NullType,
        NumericType,
        StringType,
        VarcharType,
    )

    accepts: dict[str, tuple[type, ...]] = {
        _TEXT: (StringType, VarcharType, CharType),
        _INTEGER: (IntegralType,),
        _NUMBER: (NumericType, BooleanType, NullType),
    }
    problems = []
    for column in schema.fields:
        kind = _OUTPUT_KINDS.get(column.name.lower())
        if kind is not None and not isinstance(column.dataType, accepts[kind]):
            problems.append(f"{column.name} as {kind}, not {column.dataType.simpleString()}")
    return f"must return {'; '.join(problems)}" if problems else None


class Planner:
    """Plans custom SQL against empty standard views: Spark's analysis without any data.

    It catches what parsing cannot (an unknown function such as a re-rendered
    ``CURRENT_CATALOG``, an unknown column, a string ``value``) in milliseconds per query
    once the session runs. Runtime errors (a failing cast of real data), duplicate rows and
    run time still show only at compute time. The views live in a session of their own, so
    planning never replaces the views of a computation in the same process.
    """

    def __init__(self, spark: SparkSession, conf: Mapping[str, str] | None = None) -> None:
        """``conf``: Spark options (``spark.conf``); its SQL options (``spark.sql.*``) apply
        to the planning session, whatever the session it comes from was started with."""
        new_session = getattr(spark, "newSession", None)  # Spark Connect has none
        self.session = new_session() if new_session is not None else spark
        for key, value in (conf or {}).items():
            if key.startswith("spark.sql.") and self.session.conf.get(key, None) != value:
                self.session.conf.set(key, value)
        for name in VIEW_COLUMNS:
            self.session.createDataFrame([], view_schema(name)).createOrReplaceTempView(name)

    def plan(self, sql: str) -> None:
        """Raise :class:`CustomMetricError` if the guard or Spark's analysis refuses ``sql``."""
        rendered = check_sql(sql)
        try:
            frame = self.session.sql(rendered)
        except Exception as exc:  # analysis errors come as several pyspark and py4j types
            raise CustomMetricError(
                f"Spark cannot plan the custom SQL: {spark_reason(exc)}"
            ) from None
        problem = output_type_problem(frame.schema)  # the names were checked by the guard
        if problem:
            raise CustomMetricError(f"custom SQL {problem}")


def spark_reason(exc: BaseException) -> str:
    """A Spark (or Python) error in one line: its message without the plan, context or stack."""
    message: Any = None
    get_message = getattr(exc, "getMessage", None)
    if callable(get_message):
        message = get_message()  # pyspark's errors: "[CONDITION] text SQLSTATE: ..."
    java = getattr(exc, "java_exception", None)
    if message is None and java is not None:
        message = java.getMessage()  # py4j: an unconverted JVM exception
    text = str(message if message is not None else exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.split(" SQLSTATE:")[0].strip()
