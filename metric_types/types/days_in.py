"""``days_in``: day ``k`` since each user's exposure, over the users whose day ``k`` is over.

Day ``k`` of user ``u`` is ``[t_u + (k-1)·24h, t_u + k·24h)``; the slice of date ``D`` holds
the users whose day ``k`` ended by the end of ``D``. Events still count only inside the
period (``ts < end``), as everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from metadata.periods import DAY_MS
from metric_types.base import Day, MetricType

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from metric_types.plan import MetricPlan


def wanted_days(metrics: Sequence[MetricPlan]) -> list[int]:
    return sorted({k for m in metrics for k in m.days})


class DaysIn(MetricType):
    name = "days_in"

    def lookback_ms(self, metrics: Sequence[MetricPlan]) -> int:
        return max(wanted_days(metrics), default=0) * DAY_MS

    def users(self, exposures: DataFrame, day: Day, metrics: Sequence[MetricPlan]) -> DataFrame:
        from pyspark.sql import functions as F

        days = F.array(*[F.lit(k) for k in wanted_days(metrics)])
        exploded = exposures.withColumn("day_in", F.explode(days))
        return exploded.where(F.col("t_u") + F.col("day_in") * DAY_MS <= day.end)

    def events(self, counted: DataFrame, day: Day, metrics: Sequence[MetricPlan]) -> DataFrame:
        from pyspark.sql import functions as F

        k = (F.floor((F.col("ts") - F.col("t_u")) / DAY_MS) + 1).cast("int")
        with_k = counted.withColumn("day_in", k)
        complete = F.col("t_u") + F.col("day_in") * DAY_MS <= day.end
        return with_k.where(F.col("day_in").isin(wanted_days(metrics)) & complete)
