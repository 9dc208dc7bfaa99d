"""Spark readers of the columnar archive (:mod:`metric_types.columnar`).

Only the hours a slice can touch are read (the archive is partitioned by event hour), with
an explicit schema: a segment field missing from an hour's file reads as null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from metric_types.columnar import HourFile
from udf.archive.layout import HOUR_MS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


def hours_between(hours: Sequence[HourFile], ts_from: int, ts_to: int) -> list[str]:
    """The Parquet data (files or folders) of the hours overlapping ``[ts_from, ts_to)``."""
    return [
        h.path for h in hours
        if h.path and h.hour * HOUR_MS < ts_to and (h.hour + 1) * HOUR_MS > ts_from
    ]  # fmt: skip


def read_events(spark: SparkSession, files: Sequence[str], fields: Sequence[str]) -> DataFrame:
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    schema = StructType(
        [StructField("user_id", LongType()), StructField("event_type", StringType()),
         StructField("ts", LongType()), StructField("value", DoubleType())]
        + [StructField(f, StringType()) for f in fields]
    )  # fmt: skip
    return _read(spark, files, schema)


def read_activations(spark: SparkSession, files: Sequence[str]) -> DataFrame:
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    schema = StructType(
        [StructField("user_id", LongType()), StructField("experiment", StringType()),
         StructField("group", StringType()), StructField("ts", LongType())]
    )  # fmt: skip
    return _read(spark, files, schema)


def _read(spark: SparkSession, files: Sequence[str], schema: StructType) -> DataFrame:
    if not files:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(*files)
