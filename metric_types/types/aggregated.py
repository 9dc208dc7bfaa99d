"""``aggregated``: cumulative from the period's start through the end of the day."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from metric_types.base import Day, MetricType

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from metric_types.plan import MetricPlan


class Aggregated(MetricType):
    name = "aggregated"

    def users(self, exposures: DataFrame, day: Day, metrics: Sequence[MetricPlan]) -> DataFrame:
        from pyspark.sql import functions as F

        return exposures.where(F.col("t_u") < day.end).withColumn("day_in", F.lit(0))

    def events(self, counted: DataFrame, day: Day, metrics: Sequence[MetricPlan]) -> DataFrame:
        from pyspark.sql import functions as F

        return counted.where(F.col("ts") < day.end).withColumn("day_in", F.lit(0))
