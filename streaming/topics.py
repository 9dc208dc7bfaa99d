"""The intermediate topics of the jobs apart (``stream.topics``): their names, making and
removing them, their Flink tables, and whether the aggregation job has read them to the end.

What crosses from the filter jobs to the aggregation job (:data:`STREAMS`): the filtered
events and the valid activations, insert-only, each Kafka record keyed by its ``user_id``
(a user's records stay in one partition, in the order they were written), and each filter
job's progress, a changelog keyed by its topic.

* **At least once.** The filter jobs write at least once (flushed at every checkpoint): a
  filter job restarted from its checkpoint sends again what it sent after it. That is exact
  because every record that crosses is a function of one input record (the same record
  each time), and the aggregation job is idempotent for copies: an event seen twice is one
  event by its ``(user_id, event_type, ts)``, an activation seen twice does not move the
  first trigger time, which is a minimum, and the progress is kept by the results sink as
  the last value of each topic. Kafka transactions could not be tried here:
  neither local broker hides an aborted transaction from a ``read_committed`` reader.
* **Generations.** A fresh start makes new topics,
  ``<prefix>.<mode>.<generation>.<stream>``, and removes those of the generation before:
  nothing of an earlier replay or run can be read again. A resume keeps its generation.
* **The end of a replay.** The filter jobs end with their input; the aggregation job reads
  on until its consumer group's committed offsets (committed at each of its checkpoints)
  are the end of every partition (:meth:`Topics.read_to_end`), and is then stopped with a
  drain. The end is found by reading from the committed offset until the partition's end,
  not by asking the broker for it: tansu, the broker of the tests, under-reports a
  partition's latest offset (tests/support/kafka_brokers.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from udf.config.stream_topics import IntermediateTopics
from udf.errors import ConnectorError
from udf.logging import get_logger

log = get_logger(__name__)

# stream -> the columns of its Kafka records' key (a changelog's are its primary key)
STREAMS: dict[str, tuple[str, ...]] = {
    "filtered_events": ("user_id",),
    "valid_activations": ("user_id",),
    "progress_events": ("topic",),
    "progress_activations": ("topic",),
}
CHANGELOGS = frozenset({"progress_events", "progress_activations"})
TIMEOUT_S = 30.0


def new_generation() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Topics:
    """The topics of one mode's generation on the cluster of ``settings``."""

    settings: IntermediateTopics
    mode: str
    generation: str
    partitions: int

    def name(self, stream: str) -> str:
        return f"{self.settings.prefix}.{self.mode}.{self.generation}.{stream}"

    @property
    def group(self) -> str:
        """The aggregation job's consumer group (its offsets: :meth:`read_to_end`)."""
        return f"{self.settings.prefix}.{self.mode}.{self.generation}.aggregation"

    # -- Flink tables ---------------------------------------------------------------------

    def table_options(self, stream: str, *, writing: bool) -> dict[str, str]:
        """The WITH options of the Flink Kafka table of ``stream``'s topic."""
        options = {
            "connector": "kafka",
            "topic": self.name(stream),
            "properties.bootstrap.servers": self.settings.bootstrap,
            "key.format": "json",
            "key.fields": ";".join(STREAMS[stream]),
            "value.format": "debezium-json" if stream in CHANGELOGS else "json",
        }
        if writing:
            options["sink.delivery-guarantee"] = "at-least-once"
            if self.settings.single_writer and stream not in CHANGELOGS:
                # (a changelog's writer is its key's one subtask: the progress is grouped by topic)
                options["sink.parallelism"] = "1"
        else:
            options |= {"properties.group.id": self.group, "scan.startup.mode": "earliest-offset"}
        options |= {f"properties.{k}": v for k, v in self.settings.properties.items()}
        return options

    def ddl(self, stream: str, columns: Sequence[tuple[str, str]], *, writing: bool) -> str:
        """``CREATE TEMPORARY TABLE`` of ``stream``'s topic with ``columns`` (name, SQL type)."""
        fields = [f"`{name}` {kind}" for name, kind in columns]
        options = ", ".join(
            f"'{k}' = '{v}'" for k, v in self.table_options(stream, writing=writing).items()
        )
        return f"CREATE TEMPORARY TABLE {stream} ({', '.join(fields)}) WITH ({options})"

    # -- the cluster ----------------------------------------------------------------------

    def create(self) -> None:
        """Make this generation's topics (a topic that exists already is kept)."""
        from confluent_kafka.admin import NewTopic

        replication = self.settings.replication_factor or -1
        wanted = [NewTopic(self.name(s), self.partitions, replication) for s in STREAMS]
        with self._admin() as admin:
            for topic, future in admin.create_topics(wanted, request_timeout=TIMEOUT_S).items():
                try:
                    future.result(timeout=TIMEOUT_S)
                except Exception as exc:
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise ConnectorError(f"cannot create the topic {topic} on "
                                             f"{self.settings.bootstrap}: {exc}") from None  # fmt: skip
        log.info("stream.topics_created", generation=self.generation, partitions=self.partitions)

    def delete(self) -> None:
        """Remove this generation's topics, as far as the broker lets (a warning otherwise)."""
        try:
            with self._admin() as admin:
                names = [self.name(s) for s in STREAMS]
                for topic, future in admin.delete_topics(names, request_timeout=TIMEOUT_S).items():
                    try:
                        future.result(timeout=TIMEOUT_S)
                    except Exception as exc:
                        log.warning("stream.topic_not_deleted", topic=topic, error=str(exc))
        except Exception as exc:
            log.warning("stream.topics_not_deleted", generation=self.generation, error=str(exc))

    def read_to_end(self, streams: Sequence[str] = tuple(STREAMS)) -> bool:
        """Whether the aggregation job's committed offsets are the end of every partition of
        ``streams``' topics: nothing is left after them (read from there to each end)."""
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        partitions = [
            TopicPartition(self.name(s), p) for s in streams for p in range(self.partitions)
        ]
        with self._consumer(self.group) as group:
            committed = group.committed(partitions, timeout=TIMEOUT_S)
        starts = [TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)) for tp in committed]
        reader = Consumer(self._client_config("udf-stream-end-check") | {
            "enable.partition.eof": True, "enable.auto.commit": False,
        })  # fmt: skip
        try:
            reader.assign(starts)
            at_end: set[tuple[str | None, int | None]] = set()
            deadline = time.monotonic() + TIMEOUT_S
            while len(at_end) < len(starts):
                message = reader.poll(1.0)  # (consume() waits for its whole batch or timeout)
                if message is None:
                    if time.monotonic() > deadline:
                        raise ConnectorError(f"no answer from {self.settings.bootstrap} "
                                             f"in {TIMEOUT_S:.0f} s")  # fmt: skip
                    continue
                error = message.error()
                if error is None:
                    return False  # a record after the committed offset
                if error.code() != KafkaError._PARTITION_EOF:
                    raise ConnectorError(f"reading {message.topic()}: {error}")
                at_end.add((message.topic(), message.partition()))
            return True
        finally:
            reader.close()

    def _client_config(self, group: str) -> dict[str, Any]:
        return {"bootstrap.servers": self.settings.bootstrap, "group.id": group,
                **self.settings.properties}  # fmt: skip

    @contextmanager
    def _consumer(self, group: str) -> Iterator[Any]:
        from confluent_kafka import Consumer

        consumer = Consumer(self._client_config(group) | {"enable.auto.commit": False})
        try:
            yield consumer
        finally:
            consumer.close()

    @contextmanager
    def _admin(self) -> Iterator[Any]:
        from confluent_kafka.admin import AdminClient

        yield AdminClient(
            {"bootstrap.servers": self.settings.bootstrap, **self.settings.properties}
        )


def topics_of(settings: IntermediateTopics, mode: str, generation: str, parallelism: int) -> Topics:
    return Topics(settings, mode, generation, settings.partitions or parallelism)


def schema(table: Any) -> list[tuple[str, str]]:
    """A table's columns as (name, SQL type)."""
    columns = table._j_table.getResolvedSchema().getColumns()
    return [(c.getName(), c.getDataType().toString()) for c in columns]
