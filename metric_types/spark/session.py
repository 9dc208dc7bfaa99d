"""One Spark session per process, reused by every batch (a JVM start costs seconds).

``local[*]`` by default; any master URL (``spark://``, ``yarn``, ``k8s://``) or a Spark Connect
endpoint (``sc://host:15002``) by configuration (``udf.settings.SparkSettings``). The session
runs in UTC, so dates and hours mean the same in Spark, in Python and in the contract.

On a cluster the driver is this process and its executors run elsewhere: the driver binds to
127.0.0.1 only for a ``local`` master (executors on other hosts must reach it back; set
``spark.driver.host`` where the host's name does not resolve for them), and the executors'
Python is ``$PYSPARK_PYTHON``, by default this process's own. A Spark Connect server is the
driver itself: only session settings (``spark.sql.*``) can be sent to it, the others belong to
the server's own command line (docs/deployment.md, "Running batch on a Spark cluster").

The local JVM's own output (its start-up banner, log4j lines) is read from pipes and logged
through :mod:`logging` at the level each line carries (``WARN`` a warning, ``ERROR`` an
error, the banner info), instead of being written to the process's stderr: an Airflow task
logs everything on stderr as an error, so a green task would otherwise show red lines.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from udf.logging import get_logger
from udf.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)
jvm_log = logging.getLogger("udf.spark.jvm")
_lock = threading.Lock()
_target: str | None = None  # the master or Connect URL of the session get_session started
_started: dict[str, str] = {}  # the settings it started with
_conf: dict[str, str] = {}  # the settings it has now (its SQL ones may be set since)
# log4j's console layout: "26/12/02 17:11:22 WARN NativeCodeLoader: ..."
_LOG4J_LEVEL = re.compile(r"^\S+ \S+ (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) ")
_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO,
           "WARN": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}  # fmt: skip
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

# Settings of the local driver's JVM: a session restarted in the same process keeps the JVM
JVM_SETTINGS = frozenset({"spark.driver.memory", "spark.driver.extraJavaOptions",
                          "spark.driver.extraClassPath", "spark.driver.extraLibraryPath"})  # fmt: skip


def get_session(settings: SparkSettings | None = None) -> SparkSession:
    """The process's session, started on first use with ``settings``.

    A process asked for other settings than its session's (one process running tasks of
    several homes, as ``dag.test()`` does) gets them, so a setting is never silently
    ignored: SQL settings a running session can change (``spark.sql.shuffle.partitions``)
    are set on it, and another master, Connect server or static setting (the driver's
    memory) stops the session and starts one with them.
    """
    from pyspark.sql import SparkSession

    global _target, _started, _conf
    settings = settings or SparkSettings()
    target = settings.remote or settings.master
    conf = {**DEFAULT_CONF, **settings.conf}
    _quiet_query_context_loggers()
    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            if _target is None:  # a session this module did not start
                return active
            if _target == target and _settable(active, conf):
                return active
            changed = _differences(_conf, conf)
            log.warning("spark session restarted on new settings", was=_target, now=target,
                        settings=", ".join(changed))  # fmt: skip
            if fixed := [k for k in changed if k in JVM_SETTINGS and not settings.remote]:
                log.warning("spark settings of the driver's JVM apply in a new process only",
                            settings=", ".join(fixed))  # fmt: skip
            active.stop()
            if is_connect(active):  # pyspark routes every later session to Connect otherwise
                os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
        if not settings.remote and settings.master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = SparkSession.builder.appName("udf-batch-metrics")
        _started = _conf = dict(conf)
        if settings.remote:
            builder = builder.remote(settings.remote)
            conf = session_conf(conf)
        else:
            builder = builder.master(settings.master)
            _start_jvm({"spark.master": settings.master, "spark.app.name": "udf-batch-metrics",
                        **conf})  # fmt: skip
        for key, value in conf.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        _target = target
        if not settings.remote:
            session.sparkContext.setLogLevel("ERROR")
        log.info("spark session", master=settings.remote or settings.master)
        return session


def _differences(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _settable(active: SparkSession, conf: dict[str, str]) -> bool:
    """Give the running session ``conf`` by setting its SQL settings, if that is enough.

    False when a setting that differs can only be given at start: one the session cannot
    change, or one it started with that ``conf`` drops (unsetting it would bring back the
    start's value, not Spark's default). On Spark Connect only SQL settings count: the
    server owns the others (:func:`session_conf`).
    """
    global _conf
    changed = _differences(_conf, conf)
    if is_connect(active):
        changed = [k for k in changed if k.startswith("spark.sql.")]
    if not changed:
        return True
    if any(not active.conf.isModifiable(k) or (k not in conf and k in _started) for k in changed):
        return False
    for key in changed:
        if key in conf:
            active.conf.set(key, conf[key])
        else:
            active.conf.unset(key)
    log.info("spark session settings changed", settings=", ".join(changed))
    _conf = dict(conf)
    return True


def session_conf(conf: dict[str, str]) -> dict[str, str]:
    """The settings a Spark Connect client can send: ``spark.sql.*`` ones.

    The server owns everything else (its memory, JVM options, UI, master): Spark refuses to
    change them from a client, with a warning per key. The platform's own defaults of that
    kind are dropped silently; a user's are logged once, naming them, so a setting that has
    no effect never looks applied.
    """
    kept = {k: v for k, v in conf.items() if k.startswith("spark.sql.")}
    ignored = sorted(k for k in conf.keys() - kept.keys() if conf[k] != DEFAULT_CONF.get(k))
    if ignored:
        log.warning("spark settings a Spark Connect server sets itself, not sent",
                    settings=", ".join(ignored))  # fmt: skip
    return kept


def is_connect(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect client (no SparkContext, RDDs or JVM)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _start_jvm(conf: dict[str, str]) -> None:
    """Start the local JVM with ``conf``, its stdout and stderr forwarded to :data:`jvm_log`.

    PySpark's ``launch_gateway`` takes Popen arguments for exactly this (its "developer
    feature" for capturing the JVM's output); the session the builder creates next reuses
    this gateway. A JVM that is already running (or an external one, via
    ``PYSPARK_GATEWAY_PORT``) is left as it is.
    """
    from subprocess import PIPE

    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    spark_conf = SparkConf(loadDefaults=False)
    for key, value in conf.items():
        spark_conf.set(key, value)
    gateway = launch_gateway(spark_conf, popen_kwargs={"stdout": PIPE, "stderr": PIPE})
    proc = getattr(gateway, "proc", None)
    if proc is not None:
        for stream in (proc.stdout, proc.stderr):
            threading.Thread(
                target=_forward, args=(stream,), name="spark-jvm-log", daemon=True
            ).start()
    SparkContext._ensure_initialized(gateway=gateway)


def _forward(stream: IO[bytes]) -> None:
    """Log each line of the JVM's output at its log4j level.

    Lines without one (a stack trace under an ``ERROR`` line) keep the last line's level;
    before the first log4j line (the banner) they are info.
    """
    level = logging.INFO
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            continue
        found = _LOG4J_LEVEL.match(line)
        if found:
            level = _LEVELS[found.group(1)]
        jvm_log.log(level, line)
    stream.close()


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
    connect = is_connect(spark)
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
