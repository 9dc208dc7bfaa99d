"""The local JVM's output is logged at the level each line carries, never dumped on stderr."""

from __future__ import annotations

import io
import logging

from metric_types.spark.session import _forward

BANNER = b"""WARNING: Using incubator modules: jdk.incubator.vector
Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties
Setting default log level to "WARN".
26/12/02 17:11:22 WARN NativeCodeLoader: Unable to load native-hadoop library
26/12/02 17:11:30 ERROR Executor: Exception in task 0.0
java.lang.OutOfMemoryError: Java heap space
\tat org.apache.spark.Foo.bar(Foo.scala:1)
Caused by: boom
26/12/02 17:11:31 INFO SparkContext: Successfully stopped SparkContext
"""


def test_jvm_lines_keep_their_log4j_level_and_the_banner_is_info(caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="udf.spark.jvm"):
        _forward(io.BytesIO(BANNER))
    levels = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels == [
        ("INFO", "WARNING"),
        ("INFO", "Using Spark's default log4j profile"),
        ("INFO", 'Setting default log level to "WARN".'),
        ("WARNING", "26/12/02 17"),
        ("ERROR", "26/12/02 17"),
        ("ERROR", "java.lang.OutOfMemoryError"),
        ("ERROR", "\tat org.apache.spark.Foo.bar(Foo.scala"),
        ("ERROR", "Caused by"),
        ("INFO", "26/12/02 17"),
    ]
