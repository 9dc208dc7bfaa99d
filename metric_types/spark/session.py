"""One Spark session per process, reused by every batch (a JVM start costs seconds).

``local[*]`` by default; any master URL (``spark://``, ``yarn``, ``k8s://``) or a Spark Connect
endpoint (``sc://host:15002``) by configuration (``udf.settings.SparkSettings``). The session
runs in UTC, so dates and hours mean the same in Spark, in Python and in the contract.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from udf.logging import get_logger
from udf.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)
_lock = threading.Lock()

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
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
}


def get_session(settings: SparkSettings | None = None) -> SparkSession:
    """The process's session, started on first use with ``settings``."""
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings()
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
