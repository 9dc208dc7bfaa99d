"""``calendar_day``: one UTC day of the period, over the users exposed by its end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from metric_types.base import Day, MetricType

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from metric_types.plan import MetricPlan


class CalendarDay(MetricType):
    name = "calendar_day"

    def events_from(self, day: Day, first_period_start: int) -> int:
        return max(day.start, first_period_start)

    def users(self, exposures: DataFrame, day: Day, metrics: Sequence[MetricPlan]) -> DataFrame:
        from pyspark.sql import functions as F

        return exposures.where(F.col("t_u") < day.end).withColumn("day_in", F.lit(0))

    def events(self, counted: DataFrame, day: Day, metrics: Sequence[MetricPlan]) -> DataFrame:
        from pyspark.sql import functions as F

        in_day = (F.col("ts") >= day.start) & (F.col("ts") < day.end)
        return counted.where(in_day).withColumn("day_in", F.lit(0))
