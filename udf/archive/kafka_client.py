"""Kafka as the archive sees it: which topics, how to reach them, how far the archive lags.

The archive remembers, in its ledger, the next offset to archive of every Kafka partition
(:meth:`~udf.archive.ledger.Ledger.kafka_offsets`); Kafka knows each partition's end
offset. Their difference is the archiver's **lag**, per partition (:func:`archive_lag`).
The same offsets are where a reader of the archive switches to the live topic: everything
before them is in the archive, everything from them on is still only in Kafka.

Kafka's committed offsets for the archiver's consumer group are kept up to date too, but
only for Kafka's own tooling: the ledger, written atomically with the data, is the truth.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udf.archive.layout import TOPICS, ArchiveLayout
from udf.archive.ledger import Ledger
from udf.errors import ArchiveError, InputError

if TYPE_CHECKING:
    from confluent_kafka import Consumer

DEFAULT_GROUP = "udf-archiver"
BATCH_RECORDS = 50_000  # the archiver commits a batch at this many records...
BATCH_SECONDS = 2.0  # ...or this long after its first record
TIMEOUT_S = 10.0
_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class TopicRoute:
    """An archive topic and the Kafka topic it is archived from (the same name by default)."""

    topic: str
    kafka_topic: str

    @classmethod
    def parse(cls, text: str) -> TopicRoute:
        """``events`` or ``events=prod.events`` (archive topic = Kafka topic)."""
        topic, _, kafka_topic = text.partition("=")
        topic, kafka_topic = topic.strip(), (kafka_topic.strip() or topic.strip())
        if topic not in TOPICS:
            raise InputError(
                f"--topic {text!r}: the archive topic must be one of {', '.join(TOPICS)}"
            )
        if not _KAFKA_TOPIC.fullmatch(kafka_topic):
            raise InputError(f"--topic {text!r}: {kafka_topic!r} is not a valid Kafka topic name")
        return cls(topic, kafka_topic)


def parse_routes(texts: Sequence[str]) -> list[TopicRoute]:
    routes = [TopicRoute.parse(t) for t in texts]
    if not routes:
        raise InputError("give at least one --topic")
    for kind in ("topic", "kafka_topic"):
        names = [getattr(r, kind) for r in routes]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise InputError(f"--topic: {', '.join(doubled)} given more than once")
    return routes


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the cluster: bootstrap servers, the consumer group, extra client settings.

    ``config`` holds any other librdkafka setting (``security.protocol``, ``sasl.*``, ...);
    the settings the archiver's guarantees rest on cannot be overridden.
    """

    bootstrap: str
    group: str = DEFAULT_GROUP
    config: Mapping[str, str] = field(default_factory=dict)

    def consumer_config(self) -> dict[str, Any]:
        fixed = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "enable.auto.commit": False,  # offsets are committed after the archive is durable
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,  # tells when a partition is caught up (--once)
        }
        clash = sorted(set(self.config) & set(fixed))
        if clash:
            raise InputError(f"--kafka-config cannot set {', '.join(clash)} (use the options)")
        return {
            "client.id": "udf-archiver",
            "auto.offset.reset": "earliest",
            **self.config,
            **fixed,
        }

    def consumer(self) -> Consumer:
        """A consumer with these settings.

        librdkafka's own log goes to the ``udf.kafka.client`` logger, all of it when that
        logger is at DEBUG, otherwise only critical messages: it logs every failed
        connection attempt (hundreds a second while a broker is down), and the errors that
        matter reach the archiver anyway, as errors of the client calls and of the records.
        """
        from confluent_kafka import Consumer, KafkaException

        client_log = logging.getLogger("udf.kafka.client")
        verbosity = 7 if client_log.isEnabledFor(logging.DEBUG) else 2
        try:
            return Consumer(
                {"log_level": verbosity, **self.consumer_config()},
                logger=client_log,
                error_cb=_ClientErrors(),
            )
        except (KafkaException, ValueError, TypeError) as exc:
            raise InputError(f"Kafka client settings: {error_text(exc)}") from None


def parse_config(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs (``--kafka-config``) as a dict."""
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--kafka-config {pair!r}: expected KEY=VALUE")
        config[key.strip()] = value.strip()
    return config


def partition_count(consumer: Consumer, kafka_topic: str, bootstrap: str) -> int:
    """How many partitions ``kafka_topic`` has; a clear error if Kafka or the topic is missing."""
    from confluent_kafka import KafkaException

    try:
        metadata = consumer.list_topics(kafka_topic, timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise ArchiveError(f"cannot reach Kafka at {bootstrap}: {error_text(exc)}") from None
    info = metadata.topics.get(kafka_topic)
    if info is None or info.error is not None or not info.partitions:
        raise ArchiveError(f"Kafka topic {kafka_topic!r} does not exist on {bootstrap}")
    return len(info.partitions)


@dataclass(frozen=True)
class PartitionLag:
    """One partition: the next offset to archive, Kafka's offsets, and the lag between them.

    ``archived`` is ``None`` before the first record is archived; ``lost`` counts records
    Kafka deleted (retention) before the archiver got to them.
    """

    topic: str
    kafka_topic: str
    partition: int
    archived: int | None
    earliest: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - max(self.archived or 0, self.earliest))

    @property
    def lost(self) -> int:
        return max(0, self.earliest - self.archived) if self.archived is not None else 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "lag": self.lag, "lost": self.lost}


def archived_offsets(archive: Path, route: TopicRoute) -> dict[int, int]:
    """Per partition, the next offset of ``route`` not yet in the archive (from the ledger)."""
    ledger = Ledger(ArchiveLayout(archive).ledger)
    ledger.refresh()
    return ledger.kafka_offsets(route.topic, route.kafka_topic)


def archive_lag(
    archive: Path,
    kafka: KafkaSettings,
    routes: Sequence[TopicRoute],
    consumer: Consumer | None = None,
    ledger: Ledger | None = None,
) -> list[PartitionLag]:
    """Every partition's lag: Kafka's end offset minus the archive's next offset.

    With a running ``consumer`` (the archiver's own), Kafka's offsets are those of its last
    fetches where it has them; otherwise they are asked of the brokers (ListOffsets). A
    writer's own ``ledger`` spares reading the whole ledger again.
    """
    from confluent_kafka import KafkaException, TopicPartition

    own = consumer is None
    client = kafka.consumer() if consumer is None else consumer
    if ledger is None:
        ledger = Ledger(ArchiveLayout(archive).ledger)
    ledger.refresh()
    rows = []
    try:
        for route in routes:
            archived = ledger.kafka_offsets(route.topic, route.kafka_topic)
            for p in range(partition_count(client, route.kafka_topic, kafka.bootstrap)):
                tp = TopicPartition(route.kafka_topic, p)
                try:
                    # a running consumer knows them from its fetches; else (or not yet) ask
                    low, high = (-1, -1) if own else client.get_watermark_offsets(tp, cached=True)
                    if low < 0 or high < 0:
                        low, high = client.get_watermark_offsets(tp, timeout=TIMEOUT_S)
                except KafkaException as exc:
                    raise ArchiveError(
                        f"cannot read the offsets of {route.kafka_topic}[{p}]: {error_text(exc)}"
                    ) from None
                rows.append(
                    PartitionLag(
                        route.topic,
                        route.kafka_topic,
                        p,
                        archived.get(p),
                        max(low, 0),
                        max(high, 0),
                    )
                )
    finally:
        if own:
            client.close()
    return rows


class _ClientErrors:
    """Logs the errors librdkafka reports outside any call (a broker down, ...), each once a minute.

    librdkafka retries by itself and repeats the same error on every attempt.
    """

    def __init__(self, every_s: float = 60.0):
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def __call__(self, error: Any) -> None:
        text, now = error.str(), time.monotonic()
        if now - self._last.get(text, -self.every_s) >= self.every_s:
            self._last[text] = now
            logging.getLogger("udf.kafka.client").warning("kafka client: %s", text)


def error_text(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else exc
    return str(getattr(error, "str", lambda: error)())
