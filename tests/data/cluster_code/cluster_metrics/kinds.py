"""``event_kinds`` as a Python function with a Python UDF: distinct event types per user.

The UDF wraps :func:`distinct_count`, a module-level function, which cloudpickle pickles by
reference: a cluster's Python workers must import this module to run it. On ``local[*]``
they inherit the driver's PYTHONPATH; on a cluster the platform ships the package.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType


def distinct_count(kinds: list[str]) -> int:
    return len(set(kinds))


def event_kinds(views: dict[str, DataFrame]) -> DataFrame:
    count = F.udf(distinct_count, LongType())
    return (
        views["counted_events"]
        .groupBy("experiment", "group", "period_start", "user_id")
        .agg(count(F.collect_list("event_type")).alias("value"))
    )
