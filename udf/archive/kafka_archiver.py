"""The Kafka archiver: moves Kafka topics into the archive exactly once.

It consumes each Kafka topic's partitions in batches and writes every batch with the
archive's own commit protocol (:mod:`udf.archive.journal`), as one import per topic:

- **Same partitions.** Kafka partition ``p`` is archive partition ``p`` (``part-<p>.jsonl``),
  records in offset order within it. The archive topic's partition count must equal the
  Kafka topic's, and a record whose user the archive's partitioner (Kafka's murmur2 on the
  ``user_id`` as an 8-byte long, :mod:`udf.archive.partitioner`) would place elsewhere is
  counted as *misplaced* (its producer does not key by ``user_id`` that way) and kept where
  it arrived.
- **Same validation.** Records are validated like imported lines; corrupt ones (an empty
  message included) are dead-lettered with their partition and offset.
- **Exactly once.** The batch's offsets, per partition, are written in the import's ledger
  line, committed atomically with the data. A restart takes its start offsets from the
  ledger, never from Kafka, and a batch drops any record the ledger already holds (a second
  archiver, a redelivery), so a crash at any point, SIGKILL included, neither loses nor
  doubles a record. Kafka's committed offsets follow, after the data is durable, for
  Kafka's own tooling.

It runs until stopped (:meth:`KafkaArchiver.run` with a ``stop`` event, e.g. on SIGTERM),
until caught up (``once``), until no record came for a while (``until_idle``) or for a time
budget (``max_seconds``): the latter suit a periodic Airflow task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from udf.archive.journal import ArchiveWriter
from udf.archive.kafka_client import (
    BATCH_RECORDS,
    BATCH_SECONDS,
    KafkaSettings,
    PartitionLag,
    TopicRoute,
    archive_lag,
    error_text,
    partition_count,
)
from udf.archive.layout import TopicSettings
from udf.archive.staging import ImportReport, new_import_id
from udf.errors import ArchiveError, InputError
from udf.home import Home
from udf.logging import get_logger

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, Message

log = get_logger(__name__)

POLL_SECONDS = 0.2
METADATA_CHECK_SECONDS = 60.0


@dataclass
class TopicTotals:
    """What one run archived from one Kafka topic."""

    topic: str
    kafka_topic: str
    partitions: int
    records: int = 0
    corrupt: int = 0
    misplaced: int = 0
    already_archived: int = 0  # consumed but found in the ledger already: dropped
    lost: int = 0  # deleted by Kafka's retention before they were archived
    batches: int = 0


@dataclass
class ArchiveRun:
    """One run of the archiver: why it stopped, what it archived, the lag it left."""

    stopped: str
    seconds: float
    topics: list[TopicTotals] = field(default_factory=list)
    lag: list[PartitionLag] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "topics": [t.__dict__ for t in self.topics],
            "lag": [row.as_dict() for row in self.lag],
        }


Progress = Callable[[ArchiveRun], None]


class Consumed(NamedTuple):
    """One consumed Kafka record (the value may be empty: a null or empty message)."""

    topic: str
    partition: int
    offset: int
    value: bytes

    @classmethod
    def of(cls, message: Message) -> Consumed:
        return cls(
            str(message.topic()),
            int(message.partition() or 0),
            int(message.offset() or 0),
            message.value() or b"",
        )


class KafkaArchiver:
    """Archives ``routes`` (archive topic ← Kafka topic) from the cluster ``kafka`` into ``home``."""

    def __init__(
        self,
        home: Home,
        kafka: KafkaSettings,
        routes: Sequence[TopicRoute],
        *,
        batch_records: int = BATCH_RECORDS,
        batch_seconds: float = BATCH_SECONDS,
        start: str = "earliest",
    ):
        if start not in ("earliest", "latest"):
            raise InputError(f"start must be 'earliest' or 'latest', not {start!r}")
        self.home = home.ensure()
        self.kafka = kafka
        self.routes = list(routes)
        self.batch_records = batch_records
        self.batch_seconds = batch_seconds
        self.start = start
        self.writer = ArchiveWriter(home)
        self._by_kafka = {r.kafka_topic: r for r in self.routes}

    def run(
        self,
        *,
        once: bool = False,
        until_idle: float | None = None,
        max_seconds: float | None = None,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        progress_seconds: float = 5.0,
    ) -> ArchiveRun:
        """Archive until stopped, caught up (``once``), idle or out of time; the run's report."""
        stop = stop or threading.Event()
        began = time.monotonic()
        consumer = self.kafka.consumer()
        try:
            settings, totals = self._assign(consumer)
            run = ArchiveRun("", 0.0, list(totals.values()))
            everything = {
                (r.kafka_topic, p) for r in self.routes for p in range(settings[r.topic].partitions)
            }
            eof: set[tuple[str, int]] = set()  # partitions consumed to their end, as of now
            pending: list[Consumed] = []
            batch_began = last_record = last_report = last_check = began
            while not run.stopped:
                had = len(pending)
                for message in consumer.consume(
                    num_messages=min(self.batch_records - had, 10_000), timeout=POLL_SECONDS
                ):
                    error = message.error()
                    if error is None:
                        record = Consumed.of(message)
                        pending.append(record)
                        eof.discard((record.topic, record.partition))
                    else:
                        self._on_error(error, message, eof)
                now = time.monotonic()
                if len(pending) > had:
                    last_record = now
                    batch_began = now if not had else batch_began
                run.stopped = _stop_reason(
                    stopped=stop.is_set(),
                    caught_up=once and eof >= everything,
                    idle=until_idle is not None and now - last_record >= until_idle,
                    out_of_time=max_seconds is not None and now - began >= max_seconds,
                )
                if pending and (
                    run.stopped
                    or len(pending) >= self.batch_records
                    or now - batch_began >= self.batch_seconds
                ):
                    self._commit(consumer, pending, settings, totals)
                    pending = []
                if now - last_check >= METADATA_CHECK_SECONDS:
                    self._check_partitions(consumer, settings)
                    last_check = now
                if progress and not run.stopped and now - last_report >= progress_seconds:
                    run.seconds, run.lag = now - began, self._lag(consumer)
                    progress(run)
                    last_report = now
            run.seconds, run.lag = time.monotonic() - began, self._lag(consumer)
            if progress:
                progress(run)
            log.info(
                "archiver.stopped",
                stopped=run.stopped,
                seconds=round(run.seconds, 3),
                records=sum(t.records for t in run.topics),
            )
            return run
        finally:
            consumer.close()

    def _lag(self, consumer: Consumer) -> list[PartitionLag]:
        return archive_lag(self.home.archive, self.kafka, self.routes, consumer, self.writer.ledger)

    # -- start -------------------------------------------------------------------------------

    def _assign(
        self, consumer: Consumer
    ) -> tuple[dict[str, TopicSettings], dict[str, TopicTotals]]:
        """Check partition counts and assign every partition at the ledger's next offset."""
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

        default = OFFSET_BEGINNING if self.start == "earliest" else OFFSET_END
        assignment, settings, totals = [], {}, {}
        with self.writer.locked():
            for route in self.routes:
                count = partition_count(consumer, route.kafka_topic, self.kafka.bootstrap)
                settings[route.topic] = self._settings(route, count)
                totals[route.kafka_topic] = TopicTotals(route.topic, route.kafka_topic, count)
                archived = self.writer.ledger.kafka_offsets(route.topic, route.kafka_topic)
                for p in range(count):
                    if p in archived:
                        self._check_retention(
                            consumer, route, p, archived[p], totals[route.kafka_topic]
                        )
                    assignment.append(
                        TopicPartition(route.kafka_topic, p, archived.get(p, default))
                    )
        consumer.assign(assignment)
        log.info(
            "archiver.assigned",
            partitions=len(assignment),
            topics=",".join(f"{r.topic}<-{r.kafka_topic}" for r in self.routes),
        )
        return settings, totals

    def _settings(self, route: TopicRoute, count: int) -> TopicSettings:
        """The archive topic's settings, created with Kafka's partition count; refuse a mismatch."""
        layout = self.writer.layout
        if not (layout.topic_dir(route.topic) / "_topic.json").exists():
            return layout.settings(route.topic, count)
        settings = layout.settings(route.topic)
        if settings.partitions != count:
            raise InputError(
                f"archive topic {route.topic!r} has {settings.partitions} partitions but Kafka "
                f"topic {route.kafka_topic!r} has {count}: archive partition p must hold what "
                f"Kafka partition p holds (the same users), so the counts must be equal; archive "
                f"into another home, or give the Kafka topic {settings.partitions} partitions"
            )
        return settings

    def _check_partitions(self, consumer: Consumer, settings: dict[str, TopicSettings]) -> None:
        for route in self.routes:
            count = partition_count(consumer, route.kafka_topic, self.kafka.bootstrap)
            if count != settings[route.topic].partitions:
                raise ArchiveError(
                    f"Kafka topic {route.kafka_topic!r} now has {count} partitions, the archive "
                    f"{settings[route.topic].partitions}: adding partitions moves users to other "
                    f"partitions, which the archive cannot follow; archive it into another home"
                )

    def _check_retention(
        self,
        consumer: Consumer,
        route: TopicRoute,
        partition: int,
        archived: int,
        totals: TopicTotals,
    ) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            low, _ = consumer.get_watermark_offsets(
                TopicPartition(route.kafka_topic, partition), timeout=10
            )
        except KafkaException as exc:
            raise ArchiveError(
                f"cannot read the offsets of {route.kafka_topic}[{partition}]: {error_text(exc)}"
            ) from None
        if low > archived:
            totals.lost += low - archived
            log.error(
                "archiver.lost_to_retention",
                topic=route.kafka_topic,
                partition=partition,
                first=archived,
                end=low,
                records=low - archived,
                action="Kafka deleted these before they were archived; lengthen its retention",
            )

    # -- the loop ----------------------------------------------------------------------------

    def _on_error(self, error: KafkaError, message: Message, eof: set[tuple[str, int]]) -> None:
        from confluent_kafka import KafkaError

        if error.code() == KafkaError._PARTITION_EOF:
            eof.add((str(message.topic()), int(message.partition() or 0)))
        elif error.fatal() or error.code() in (
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError.TOPIC_AUTHORIZATION_FAILED,
        ):
            raise ArchiveError(f"Kafka: {error.str()}")
        else:  # transient (a broker restarting, a timeout): librdkafka retries by itself
            log.warning("archiver.kafka_error", error=error.str())

    def _commit(
        self,
        consumer: Consumer,
        messages: list[Consumed],
        settings: dict[str, TopicSettings],
        totals: dict[str, TopicTotals],
    ) -> None:
        """Archive one batch (one import per topic), then tell Kafka the new offsets."""
        from confluent_kafka import KafkaException, TopicPartition

        by_topic: dict[str, list[Consumed]] = {}
        for record in messages:
            by_topic.setdefault(record.topic, []).append(record)
        committed: list[TopicPartition] = []
        with self.writer.locked():
            for kafka_topic, batch in by_topic.items():
                route = self._by_kafka[kafka_topic]
                offsets = self._archive(route, batch, settings[route.topic], totals[kafka_topic])
                committed += [
                    TopicPartition(kafka_topic, p, end) for p, (_, end) in offsets.items()
                ]
        if committed:
            try:
                consumer.commit(offsets=committed, asynchronous=False)
            except KafkaException as exc:  # only Kafka's tooling reads them; the ledger has them
                log.warning("archiver.offset_commit_failed", error=error_text(exc))

    def _archive(
        self, route: TopicRoute, batch: list[Consumed], settings: TopicSettings, totals: TopicTotals
    ) -> dict[int, tuple[int, int]]:
        """Stage and commit one topic's part of a batch; its offsets ``{partition: (first, end)}``."""
        archived = self.writer.ledger.kafka_offsets(route.topic, route.kafka_topic)
        fresh = [r for r in batch if r.offset >= archived.get(r.partition, -1)]
        totals.already_archived += len(batch) - len(fresh)
        if not fresh:
            return {}
        partitions = [r.partition for r in fresh]
        offsets = [r.offset for r in fresh]
        spans: dict[int, tuple[int, int]] = {}
        for p, o in zip(partitions, offsets, strict=True):
            first, _ = spans.get(p, (o, o))
            spans[p] = (first, o + 1)
        report = ImportReport(
            source=f"kafka:{route.kafka_topic}", topic=route.topic, import_id=new_import_id()
        )
        stage = self.writer.stage(report, settings)
        journal = self.writer.layout.journal / f"{report.import_id}.json"
        try:
            stage.add(
                [r.value for r in fresh],
                lambda i: {"partition": partitions[i], "offset": offsets[i]},
                partitions=partitions,
                skip_blank=False,
            )
            stage.close()
            self.writer.commit(
                stage,
                {
                    "kafka": {
                        "topic": route.kafka_topic,
                        "misplaced": stage.misplaced,
                        "offsets": {str(p): list(span) for p, span in sorted(spans.items())},
                    }
                },
            )
        except BaseException:
            if not journal.exists():  # not committed: nothing may remain
                stage.discard()
            raise
        totals.records += report.records
        totals.corrupt += report.corrupt
        totals.misplaced += stage.misplaced
        totals.batches += 1
        if stage.misplaced:
            log.warning(
                "archiver.misplaced",
                topic=route.kafka_topic,
                records=stage.misplaced,
                reason="the producer does not key records by user_id as an 8-byte long",
            )
        log.info(
            "archiver.batch",
            topic=route.topic,
            kafka_topic=route.kafka_topic,
            records=report.records,
            corrupt=report.corrupt,
            import_id=report.import_id,
        )
        return spans


def _stop_reason(*, stopped: bool, caught_up: bool, idle: bool, out_of_time: bool) -> str:
    for reason, holds in (
        ("stopped", stopped),
        ("caught up", caught_up),
        ("idle", idle),
        ("time budget", out_of_time),
    ):
        if holds:
            return reason
    return ""
