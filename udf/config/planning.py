"""``udf config validate --plan``: every custom SQL planned by Spark against empty views.

Parsing (:mod:`metric_types.custom.sql_guard`) runs on every validation and costs
milliseconds; it cannot know what Spark resolves (a function sqlglot re-renders, a column
that is not in the views, a ``value`` that is a string). Spark's analysis can, with no data
at all, but needs a Spark session: seconds to start, then milliseconds per query. So it is
opt-in here (``--plan``, for CI before ``config load``), and it always runs at compute
time, per metric, before the batch's shared pass (:mod:`metric_types.custom.runner`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from udf.config.catalog import CatalogFile, CustomMetric
from udf.errors import ConfigIssue, CustomMetricError

if TYPE_CHECKING:
    from udf.settings import SparkSettings


def custom_sql_count(files: Mapping[str, CatalogFile]) -> int:
    return sum(1 for _ in _custom_sql(files))


def plan_custom_sql(
    files: Mapping[str, CatalogFile],
    progress: Callable[[], None] | None = None,
    spark: SparkSettings | None = None,
) -> list[ConfigIssue]:
    """An issue (file, field, Spark's reason) for each custom SQL Spark cannot plan, on a
    session of the ``spark`` settings (the home's: its ``spark.conf`` changes what an analysis
    accepts, ANSI mode for one)."""
    found = list(_custom_sql(files))
    if not found:
        return []
    from metric_types.custom.runner import Planner
    from metric_types.spark.session import get_session

    planner = Planner(get_session(spark), spark.conf if spark is not None else None)
    issues = []
    for file, field, sql in found:
        try:
            planner.plan(sql)
        except CustomMetricError as exc:
            issues.append(ConfigIssue(file, field, str(exc)))
        if progress is not None:
            progress()
    return issues


def _custom_sql(files: Mapping[str, CatalogFile]) -> Iterator[tuple[str, str, str]]:
    for file, catalog in files.items():
        for i, metric in enumerate(catalog.metrics):
            if isinstance(metric, CustomMetric) and metric.sql is not None:
                yield file, f"metrics[{i}] ({metric.name}).sql", metric.sql
