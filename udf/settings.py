"""Platform settings: ``<home>/settings.yaml`` (optional), then ``UDF_*`` environment overrides.

Everything has a default that runs on one machine with nothing installed beyond the
platform: Spark ``local[*]``, the embedded SQLite results store, a 3-day window and a spam
cap of 1,000 events per user and hour (the contract §3)::

    window_days: 3
    spam_cap: 1000
    custom_timeout_seconds: 1800  # per custom metric and day; a metric's own timeout_seconds wins
    spark:
      master: local[*]            # or spark://host:7077, yarn, k8s://...
      remote: null                # a Spark Connect endpoint (sc://host:15002) instead
      conf: {spark.driver.memory: 4g}  # engine options (also flink.conf, stream.flink_conf): 4, true as "4", "true"
      cleaning: auto              # local | spark: where de-duplication and the spam cap run
    archive:                      # where batch reads the archive (docs/deployment.md)
      uri: null                   # default <home>/archive; or file://, hdfs://, s3a:// URIs
      columnar_uri: null          # the cleaned Parquet copy; default <home>/columnar
    batch:
      reuse_days: true            # aggregated: start each day from the previous day's per-user values
    results:
      store: embedded             # or druid
      url: null                   # SQLAlchemy URL; default sqlite:///<home>/results.db
      druid: {router: http://druid-router:8888, datasource: udf_results}
    alerts:                       # real-time alerts (udf.config.alerts.AlertSettings)
      email_from: udf@example.com
      smtp: {host: mail.example.com, port: 587, starttls: true, user: udf}
      webhooks: {ops: https://hooks.slack.com/services/T000/B000/XXXX}
    stream:                       # udf stream replay / run (docs/streaming.md)
      parallelism: 2
      checkpoint_interval_seconds: 10
      flush_interval_seconds: 5
    validation:                   # udf validate (docs/streaming.md, "Validation")
      max_difference: 0.02        # stream vs batch, relative; the seed's 2%
      recipients: [data-eng@example.com]
    flink:                        # the local session cluster (udf flink up; docs/streaming.md)
      rest_port: 8081
      task_slots: 2

Environment overrides (for containers and Airflow workers): ``UDF_WINDOW_DAYS``,
``UDF_SPAM_CAP``, ``UDF_CUSTOM_TIMEOUT_SECONDS``, ``UDF_SPARK_MASTER``, ``UDF_SPARK_REMOTE``,
``UDF_SPARK_CLEANING``, ``UDF_ARCHIVE_URI``, ``UDF_COLUMNAR_URI``, ``UDF_BATCH_REUSE_DAYS``,
``UDF_RESULTS_STORE``, ``UDF_RESULTS_URL``, ``UDF_DRUID_ROUTER``, ``UDF_DRUID_DATASOURCE``,
``UDF_STREAM_PARALLELISM``, ``UDF_FLINK_REST_PORT``, ``UDF_ALERTS_ENABLED``, ``UDF_ALERTS_EMAIL_FROM``,
``UDF_ALERTS_SMTP_HOST``, ``UDF_ALERTS_SMTP_PORT``, ``UDF_ALERTS_SMTP_USER``,
``UDF_ALERTS_SMTP_PASSWORD``, ``UDF_ALERTS_SMTP_CONN_ID``, and ``UDF_ALERTS_WEBHOOK_<NAME>``
(the URL of webhook ``<name>``, lower-cased; webhook URLs and passwords are secrets, so the
environment is the place for them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from udf.config.alerts import AlertSettings
from udf.config.loader import FileProblem, issues_from_validation, read_yaml
from udf.config.models import Email, EngineOptions, StrictModel
from udf.config.stream_source import SourceSettings
from udf.config.stream_topics import IntermediateTopics
from udf.errors import ConfigError, ConfigIssue, InputError
from udf.home import Home
from udf.location import Location
from udf.vocabulary import DEFAULT_SPAM_CAP, DEFAULT_WINDOW_DAYS

SETTINGS_FILE = "settings.yaml"


class SparkSettings(StrictModel):
    master: str = "local[*]"
    remote: str | None = None
    conf: EngineOptions = Field(default_factory=dict)
    # Where de-duplication and the spam cap run (metric_types.columnar.cleaning_of): local
    # pyarrow threads on the driver, or Spark; auto: local for local[*] on a local archive.
    cleaning: Literal["auto", "local", "spark"] = "auto"


class BatchSettings(StrictModel):
    """How batch reuses its own work (docs/metrics.md, "Reuse across days")."""

    # aggregated: keep each day's per-user cumulative values beside the columnar copy and
    # start the next day from them (only the new day's hours are read); false: every day
    # is computed from its periods' start.
    reuse_days: bool = True


class ArchiveSettings(StrictModel):
    """Where batch reads the archive and keeps its cleaned copy (docs/deployment.md)."""

    uri: str | None = None  # a path or file://, hdfs://, s3a:// URI; default <home>/archive
    columnar_uri: str | None = None  # the cleaned Parquet copy; default <home>/columnar

    @field_validator("uri", "columnar_uri")
    @classmethod
    def _a_location(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Location.of(value)
            except InputError as exc:
                raise ValueError(str(exc)) from None
        return value


class DruidSettings(StrictModel):
    router: str = "http://localhost:8888"
    datasource: str = "udf_results"
    timeout_seconds: PositiveFloat = 600.0


class ResultsSettings(StrictModel):
    store: Literal["embedded", "druid"] = "embedded"
    url: str | None = None
    druid: DruidSettings = Field(default_factory=DruidSettings)


class StreamSettings(StrictModel):
    """The real-time pipeline (docs/streaming.md)."""

    parallelism: PositiveInt = 2
    sink_parallelism: PositiveInt = 1
    checkpoint_interval_seconds: PositiveFloat = 10.0
    flush_interval_seconds: PositiveFloat = 5.0  # results written this often
    series_flush_seconds: PositiveFloat = 60.0  # the 15-minute series written this often
    feed_interval_seconds: PositiveFloat = 5.0  # a run looks for new imports this often
    periods_interval_seconds: PositiveFloat = 300.0  # a run republishes the periods
    monitor_seconds: PositiveFloat = 2.0  # Flink looks for new feed files this often
    lateness_seconds: float = Field(default=300.0, ge=0)  # records older count as late
    state_ttl_days: PositiveFloat | None = None  # runs: max(window, CUPED) + 2 days
    mini_batch_latency_ms: PositiveInt = 1000  # a run: how stale an update may be
    replay_mini_batch_latency_ms: PositiveInt = 5000  # a replay: fewer, larger updates
    mini_batch_size: PositiveInt = 20000
    state_backend: Literal["rocksdb", "hashmap"] = "rocksdb"  # hashmap: faster, state on heap
    # Flink's managed memory, a local job's or the session cluster's TaskManager's (udf flink
    # up): RocksDB's block cache and write buffers. At 256 MB
    # a 1.6 M-event replay took 824 s, at 1 GB 383 s (the state outgrew the cache).
    state_memory: str = "1024m"
    # The local job's JVM (PyFlink's, started by the process's first stream command): its
    # options, unless JVM_ARGS is set. The parallel collector: about 5% less time than G1
    # in alternating replays (docs/benchmarks.md, "2026-12-05 (late night)"). The JIT
    # compilers' thresholds 4x the JVM's: a replay's C2 compiled about 2,000 methods, busy
    # for most of the job on one of the two cores; fewer, hotter methods, about 11% less
    # time and 12% less CPU in rotated replays (docs/benchmarks.md, "2026-12-06").
    jvm_options: str = "-XX:+UseParallelGC -XX:CompileThresholdScaling=4"
    python_mode: Literal["thread", "process"] = "thread"
    restart_attempts: int = Field(default=3, ge=0)  # before a failing job fails the command
    rows_hook: str | None = None  # "module:function" called with each write's compared rows
    flink_conf: EngineOptions = Field(default_factory=dict)  # any Flink option, last word
    source: SourceSettings = Field(default_factory=SourceSettings)  # streaming.source
    topics: IntermediateTopics | None = None  # the jobs apart, joined by Kafka (streaming.topics)

    @model_validator(mode="after")
    def _metrics_need_process_mode(self) -> StreamSettings:
        # PyFlink 2.3 registers a Python function's metrics only from process-mode workers:
        # in thread mode the source's counters would silently never appear
        if self.source.metrics and self.python_mode == "thread":
            raise ValueError(
                "source.metrics: true needs python_mode: process (PyFlink reports the metrics "
                "of Python functions only from process-mode workers)"
            )
        return self

    @property
    def flush_ms(self) -> int:
        return round(self.flush_interval_seconds * 1000)

    @property
    def series_flush_ms(self) -> int:
        return round(self.series_flush_seconds * 1000)


class ValidationSettings(StrictModel):
    """The daily streaming-vs-batch validation (``udf validate``, docs/streaming.md)."""

    # The largest relative difference between a stream and a batch number that passes (the
    # seed's 2%); the platform aims for exact agreement and reports the largest it saw.
    max_difference: float = Field(default=0.02, ge=0, lt=1)
    recipients: list[Email] = Field(default_factory=list)  # emailed on a violation
    listed_violations: PositiveInt = 50  # violations kept in a report (all are counted)


class FlinkSettings(StrictModel):
    """The local Flink session cluster of ``udf flink up`` (streaming.cluster)."""

    dir: str | None = None  # the cluster's folder (default <home>/flink): homes may share one
    rest_port: int = Field(default=8081, ge=1, le=65535)  # REST API and web UI, on localhost
    task_slots: PositiveInt = 2  # slots of the one TaskManager (>= stream.parallelism)
    jobmanager_memory: str = "1024m"  # jobmanager.memory.process.size
    # taskmanager.memory.process.size: the managed memory (stream.state_memory), 256 MB of
    # network buffers, and a heap of about 1 GB with the defaults
    taskmanager_memory: str = "3072m"
    heartbeat_timeout_seconds: PositiveFloat = 60.0  # an unresponsive TaskManager is lost after
    start_timeout_seconds: PositiveFloat = 120.0  # `udf flink up` waits this long for REST
    conf: EngineOptions = Field(default_factory=dict)  # any Flink option, last word

    @field_validator("conf")
    @classmethod
    def _port_in_one_place(cls, conf: dict[str, str]) -> dict[str, str]:
        # the commands and the supervisor reach the cluster at rest_port
        if "rest.port" in conf:
            raise ValueError("set the REST port with flink.rest_port, not rest.port")
        return conf


class Settings(StrictModel):
    window_days: PositiveFloat = DEFAULT_WINDOW_DAYS
    spam_cap: PositiveInt = DEFAULT_SPAM_CAP
    custom_timeout_seconds: PositiveFloat = 1800.0
    spark: SparkSettings = Field(default_factory=SparkSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)

    @field_validator("window_days")
    @classmethod
    def _window_in_range(cls, days: float) -> float:
        from metadata.periods import window_ms

        window_ms(days)  # nan, inf and 1e-9 are refused here, not deep in a computation
        return days

    @property
    def window_ms(self) -> int:
        from metadata.periods import window_ms

        return window_ms(self.window_days)

    def archive_location(self, home: Home) -> Location:
        return Location.of(self.archive.uri or home.archive)

    def columnar_location(self, home: Home) -> Location:
        return Location.of(self.archive.columnar_uri or home.root / "columnar")

    def results_url(self, home: Home) -> str:
        return self.results.url or f"sqlite:///{home.root / 'results.db'}"


_ENV: dict[str, tuple[str, ...]] = {
    "UDF_WINDOW_DAYS": ("window_days",),
    "UDF_SPAM_CAP": ("spam_cap",),
    "UDF_CUSTOM_TIMEOUT_SECONDS": ("custom_timeout_seconds",),
    "UDF_SPARK_MASTER": ("spark", "master"),
    "UDF_SPARK_REMOTE": ("spark", "remote"),
    "UDF_SPARK_CLEANING": ("spark", "cleaning"),
    "UDF_ARCHIVE_URI": ("archive", "uri"),
    "UDF_COLUMNAR_URI": ("archive", "columnar_uri"),
    "UDF_BATCH_REUSE_DAYS": ("batch", "reuse_days"),
    "UDF_RESULTS_STORE": ("results", "store"),
    "UDF_RESULTS_URL": ("results", "url"),
    "UDF_DRUID_ROUTER": ("results", "druid", "router"),
    "UDF_DRUID_DATASOURCE": ("results", "druid", "datasource"),
    "UDF_STREAM_PARALLELISM": ("stream", "parallelism"),
    "UDF_FLINK_REST_PORT": ("flink", "rest_port"),
    "UDF_ALERTS_ENABLED": ("alerts", "enabled"),
    "UDF_ALERTS_EMAIL_FROM": ("alerts", "email_from"),
    "UDF_ALERTS_SMTP_HOST": ("alerts", "smtp", "host"),
    "UDF_ALERTS_SMTP_PORT": ("alerts", "smtp", "port"),
    "UDF_ALERTS_SMTP_USER": ("alerts", "smtp", "user"),
    "UDF_ALERTS_SMTP_PASSWORD": ("alerts", "smtp", "password"),
    "UDF_ALERTS_SMTP_CONN_ID": ("alerts", "smtp", "conn_id"),
}
_WEBHOOK_PREFIX = "UDF_ALERTS_WEBHOOK_"  # + NAME: one webhook's URL


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(value)
    return lowered in ("true", "1", "yes")


_TYPED: dict[str, Callable[[str], Any]] = {
    "UDF_WINDOW_DAYS": float,
    "UDF_SPAM_CAP": int,
    "UDF_CUSTOM_TIMEOUT_SECONDS": float,
    "UDF_STREAM_PARALLELISM": int,
    "UDF_FLINK_REST_PORT": int,
    "UDF_ALERTS_SMTP_PORT": int,
    "UDF_ALERTS_ENABLED": _boolean,
    "UDF_BATCH_REUSE_DAYS": _boolean,
}


def load_settings(home: Home, environ: dict[str, str] | None = None) -> Settings:
    """The home's settings file (if any) with the environment's overrides applied."""
    environ = dict(os.environ if environ is None else environ)
    path = home.root / SETTINGS_FILE
    raw: dict[str, Any] = {}
    issues: list[ConfigIssue] = []
    if path.exists():
        try:
            raw = read_yaml(path) or {}
        except FileProblem as exc:
            raise ConfigError([ConfigIssue(str(path), exc.field, str(exc))]) from None
        if not isinstance(raw, dict):
            raise ConfigError([ConfigIssue(str(path), "", "expected a mapping of settings")])
    overrides = dict(_ENV)
    for var in environ:
        name = var[len(_WEBHOOK_PREFIX) :]
        if var.startswith(_WEBHOOK_PREFIX) and name:
            overrides[var] = ("alerts", "webhooks", name.lower())
    for var, where in overrides.items():
        if var not in environ or environ[var] == "":
            continue
        value: Any = environ[var]
        if var in _TYPED:
            try:
                value = _TYPED[var](value)
            except ValueError:
                kind = "true or false" if var == "UDF_ALERTS_ENABLED" else "a number"
                issues.append(ConfigIssue(var, "", f"not {kind}: {value!r}"))
                continue
        node = raw
        for part in where[:-1]:
            node = node.setdefault(part, {})
        node[where[-1]] = value
    if issues:
        raise ConfigError(issues)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(str(path), exc, raw)) from None


def settings_path(home: Home) -> Path:
    return home.root / SETTINGS_FILE
