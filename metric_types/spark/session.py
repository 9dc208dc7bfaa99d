"""One Spark session per process, reused by every batch (a JVM start costs seconds).

``local[*]`` by default; any master URL (``spark://``, ``yarn``, ``k8s://``) or a Spark Connect
endpoint (``sc://host:15002``) by configuration (``udf.settings.SparkSettings``). The session
runs in UTC, so dates and hours mean the same in Spark, in Python and in the contract.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from udf.logging import get_logger
from udf.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)
_lock = threading.Lock()
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")

DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.autoBroadcastJoinThreshold": str(256 * 1024 * 1024),
    "spark.driver.memory": "4g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.mergeSchema": "false",
    "spark.driver.extraJavaOptions": (
        f'-Duser.timezone=UTC -Dlog4j2.configurationFile="{LOG_CONFIG.as_uri()}"'
    ),
}


def get_session(settings: SparkSettings | None = None) -> SparkSession:
    """The process's session, started on first use with ``settings``."""
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings()
    _quiet_query_context_loggers()
    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = SparkSession.builder.appName("udf-batch-metrics")
        if settings.remote:
            builder = builder.remote(settings.remote)
        else:
            builder = builder.master(settings.master)
        for key, value in {**DEFAULT_CONF, **settings.conf}.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        if not settings.remote:
            session.sparkContext.setLogLevel("ERROR")
        log.info("spark session", master=settings.remote or settings.master)
        return session


def _quiet_query_context_loggers() -> None:
    """Stop pyspark logging every SQL error with its JVM stack trace on stderr.

    PySpark logs each captured analysis or runtime error (``SQLQueryContextLogger``,
    ``DataFrameQueryContextLogger``) with the full stack before raising it; the platform
    turns the raised error into a one-line reason (a custom metric's ``failed`` state, a CLI
    error), so the log would only repeat it as dozens of lines. The loggers must be made
    through PySparkLogger: a plain logger of the same name breaks pyspark's keyword calls.
    """
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


@dataclass
class TimeLimit:
    """What :func:`time_limit` saw: whether the limit passed and the jobs were cancelled."""

    seconds: float
    expired: bool = False


@contextmanager
def time_limit(spark: SparkSession, seconds: float, label: str = "udf") -> Iterator[TimeLimit]:
    """Cancel the Spark jobs this thread starts inside the block once ``seconds`` have passed.

    The jobs carry a tag of their own (job tags on a classic session, operation tags on
    Spark Connect); a timer cancels the tag, the blocked action then raises, and
    ``limit.expired`` tells that error apart from any other. Jobs started by other threads
    or outside the block are never touched.
    """
    tag = f"{label}-{uuid.uuid4().hex[:12]}"
    limit = TimeLimit(seconds)
    connect = type(spark).__module__.startswith("pyspark.sql.connect")
    if connect:
        spark.addTag(tag)
    else:
        spark.sparkContext.addJobTag(tag)

    def cancel() -> None:
        limit.expired = True
        if connect:
            spark.interruptTag(tag)
        else:
            spark.sparkContext.cancelJobsWithTag(tag)

    timer = threading.Timer(seconds, cancel)
    timer.daemon = True
    timer.start()
    try:
        yield limit
    finally:
        timer.cancel()
        if connect:
            spark.removeTag(tag)
        else:
            spark.sparkContext.removeJobTag(tag)
