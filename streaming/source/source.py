"""The unified source: a topic's archive (the bounded history), then its live tail.

One API, :class:`UnifiedSource`, registers per topic one table ``raw_<topic>`` with the
columns ``line`` (the record as it was produced), ``p`` (its partition, the same in the
archive and in Kafka) and ``ts`` (its event time, a rowtime attribute with watermarks):

* **History** comes from the partition-aligned feed (:mod:`streaming.source.feed`), read by
  Flink's filesystem source, one folder per partition.
* **Live tail.** With ``live: kafka`` a Flink Kafka table reads each Kafka partition from
  exactly the next offset the feed covers (:meth:`PartitionFeed.handover`, recorded with
  the round): no record is in both, none in neither. Without a connector this is an error
  (:class:`~udf.errors.ConnectorError`). With ``live: archive`` (the default) the tail is
  the archive's new imports: the feed publishes them as new rounds, which the filesystem
  source picks up; that includes records imported late into hours already read.
* **Event time.** A :class:`TimestampExtractor` is required (a source without one is refused):
  a SQL expression over ``line`` giving epoch ms. Watermarks trail the highest time seen by
  ``out_of_orderness_seconds``; a line without a readable time gets time 0 (it never moves
  a watermark, and :mod:`streaming.parse` dead-letters it downstream).
* **Rate limits** per topic, shared by its partitions: a gate (a Python scalar function,
  :class:`streaming.source.gate.Gate`) paces each of the ``parallelism`` subtasks at
  ``limit / parallelism`` records/s; backpressure slows the source behind it. The same gate
  counts records and unreadable ones as Flink metrics (``udf_source.<topic>.records`` and
  ``.unreadable``).
* **Watermark alignment** (``alignment``) uses Flink's alignment groups
  (``scan.watermark.alignment.*``, with the settings of :mod:`streaming.source.alignment`):
  a Kafka partition whose watermark runs more than ``max_drift_seconds`` ahead of the
  slowest in the group is paused. Flink's filesystem table source cannot join a group, so
  the archive part is aligned by how it is fed: :class:`streaming.source.slices.AlignedFeed`
  publishes history in event-time slices, all topics in lockstep (docs/streaming.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming import jvm
from streaming.jobs import unset_only
from streaming.kafka_connector import kafka_connector_jars, kafka_table_options
from streaming.parse import lit
from streaming.source.alignment import JOB_OPTIONS, kafka_alignment_options
from streaming.source.feed import PartitionFeed
from streaming.sources import PERIOD_VERSIONS, SourceTables
from udf.archive.layout import ArchiveLayout
from udf.config.stream_source import SourceSettings
from udf.errors import ConnectorError, InputError


class SourceError(InputError):
    """A unified source that cannot be built as configured."""


@dataclass(frozen=True)
class TimestampExtractor:
    """The event time of a raw line: a Flink SQL expression over ``line`` -> BIGINT epoch ms."""

    sql: str

    @classmethod
    def json_field(cls, name: str) -> TimestampExtractor:
        """An integer JSON field (epoch ms), found without a JSON parse: the first ``"name"``
        followed by ``[ \t]*:[ \t]*-?[0-9]{1,18}[ \t]*`` and ``,`` or ``}``
        (``IntegerField.java``; the pipeline's Java functions are registered first)."""
        return cls(f"integer_field(line, {lit(name)})")


@dataclass(frozen=True)
class UnifiedSource:
    feed: PartitionFeed
    timestamp: TimestampExtractor | None
    settings: SourceSettings = field(default_factory=SourceSettings)
    periods_dir: Path | None = None
    follow: bool = False  # a run: the tail is live; a replay reads the archive and ends
    monitor_seconds: float = 10.0
    parallelism: int = 1
    stop: Mapping[str, Mapping[int, int]] | None = None  # per Kafka topic: bound the tail (tests)
    jars_cache: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.timestamp, TimestampExtractor):
            raise SourceError(
                "a unified source needs a timestamp extractor (event times drive its "
                "watermarks): pass TimestampExtractor.json_field('ts') or your own expression"
            )

    @classmethod
    def from_settings(
        cls, feed: PartitionFeed, stream: Any, periods_dir: Path, follow: bool,
        jars_cache: Path | None = None,
    ) -> UnifiedSource:  # fmt: skip
        """The pipeline's source from ``stream`` (:class:`udf.settings.StreamSettings`)."""
        s: SourceSettings = stream.source
        return cls(feed, TimestampExtractor.json_field(s.timestamp_field), s, periods_dir,
                   follow, stream.monitor_seconds, stream.parallelism, jars_cache=jars_cache)  # fmt: skip

    @property
    def kafka_tail(self) -> bool:
        return self.settings.live == "kafka" and (self.follow or self.stop is not None)

    # -- registering ------------------------------------------------------------------------------

    def register(self, t_env: Any) -> SourceTables:
        self.register_topics(t_env)
        if self.periods_dir is None:
            raise SourceError("the pipeline's source needs the periods folder")
        options = {
            "connector": "filesystem",
            "path": self.periods_dir.absolute().as_uri(),
            "format": "json",
        }
        if self.follow:
            options["source.monitor-interval"] = self._interval()
        t_env.execute_sql(
            f"CREATE TEMPORARY TABLE period_versions ({PERIOD_VERSIONS}) WITH ({_with(options)})"
        )
        return SourceTables("raw_events", "raw_activations", "period_versions")

    def register_topics(self, t_env: Any) -> dict[str, str]:
        """``raw_<topic>`` (line, p, ts) for every topic of the feed; topic -> table name."""
        jvm.register(t_env)  # the timestamp's function
        if self.kafka_tail:
            self._add_connector(t_env)
        tables = {}
        for topic in self.feed.topics:
            parts = [self._archive_table(t_env, topic)]
            if self.kafka_tail:
                parts.append(self._kafka_table(t_env, topic))
            union = " UNION ALL ".join(f"SELECT line, p, ts FROM {name}" for name in parts)
            self._gate(t_env, topic, union)
            tables[topic] = f"raw_{topic}"
        return tables

    def _columns(self) -> str:
        delay = round(self.settings.out_of_orderness_seconds * 1000)
        return (f"ts AS TO_TIMESTAMP_LTZ(COALESCE({self.timestamp.sql}, 0), 3), "  # type: ignore[union-attr]
                f"WATERMARK FOR ts AS ts - INTERVAL '{delay / 1000:.3f}' SECOND")  # fmt: skip

    def _interval(self) -> str:
        return f"{max(1, round(self.monitor_seconds * 1000))}ms"

    def _archive_table(self, t_env: Any, topic: str) -> str:
        options = {"connector": "filesystem", "path": self.feed.topic_dir(topic).absolute().as_uri(),
                   "format": "raw"}  # fmt: skip
        if self.follow and not self.kafka_tail:  # the tail is the archive's new rounds
            options["source.monitor-interval"] = self._interval()
        name = f"archive_{topic}"
        t_env.execute_sql(
            f"CREATE TEMPORARY TABLE {name} (line STRING, p INT, {self._columns()}) "
            f"PARTITIONED BY (p) WITH ({_with(options)})"
        )
        return name

    def _kafka_table(self, t_env: Any, topic: str) -> str:
        kafka = self.settings.kafka
        assert kafka is not None  # the settings model insists
        kafka_topic = kafka.kafka_topic(topic)
        start = self.feed.handover().get(topic, {}).get(kafka_topic, {})
        if not start and any(ArchiveLayout(self.feed.archive).data_files(topic)):
            raise SourceError(
                f"the archive's {topic!r} holds records, but none archived from Kafka topic "
                f"{kafka_topic!r}: the live tail would repeat them. Archive the topic with "
                "`udf archive kafka`, or set stream.source.live: archive"
            )
        stop = None if self.stop is None else dict(self.stop.get(kafka_topic, {}))
        options = kafka_table_options(
            kafka.bootstrap, kafka_topic, group=kafka.group, start=start, stop=stop
        )
        if self.settings.alignment is not None:
            options |= kafka_alignment_options(self.settings.alignment)
        options |= {f"properties.{k}": v for k, v in kafka.properties.items()}
        name = f"live_{topic}"
        t_env.execute_sql(
            f"CREATE TEMPORARY TABLE {name} (line STRING, p INT METADATA FROM 'partition' VIRTUAL, "
            f"{self._columns()}) WITH ({_with(options)})"
        )
        return name

    def _gate(self, t_env: Any, topic: str, union: str) -> None:
        limit = self.settings.rate_limits.get(topic)  # type: ignore[call-overload]
        if limit is None and not self.settings.metrics:
            t_env.execute_sql(f"CREATE TEMPORARY VIEW raw_{topic} AS {union}")
            return
        from pyflink.table import DataTypes
        from pyflink.table.udf import udf

        from streaming.source.gate import Gate

        rate = None if limit is None else limit / self.parallelism
        gate = udf(Gate(topic, rate), result_type=DataTypes.STRING())
        t_env.create_temporary_function(f"gate_{topic}", gate)
        t_env.execute_sql(
            f"CREATE TEMPORARY VIEW raw_{topic} AS SELECT gate_{topic}(line, {self.timestamp.sql}) AS line, "  # type: ignore[union-attr]
            f"p, ts FROM ({union})"
        )

    def jars(self) -> list[str]:
        """The jars the job needs (``file://`` URLs): the Kafka connector's, with a Kafka tail.

        A DataStream job executed through its ``StreamExecutionEnvironment`` takes them with
        ``env.add_jars(*source.jars())`` (:func:`streaming.pipeline.build` does).
        """
        if not self.kafka_tail:
            return []
        try:
            return kafka_connector_jars(self.jars_cache)
        except ConnectorError as exc:
            raise ConnectorError(f"stream.source.live is kafka, but {exc}") from exc

    def _add_connector(self, t_env: Any) -> None:
        config = t_env.get_config()
        config.set("pipeline.jars", ";".join(self.jars()))
        if self.settings.alignment is not None:
            for key, value in unset_only(config, JOB_OPTIONS).items():
                config.set(key, value)


def _with(options: Mapping[str, str]) -> str:
    return ", ".join(f"{lit(k)} = {lit(v)}" for k, v in options.items())
