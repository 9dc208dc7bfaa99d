"""The Kafka archiver against a real Kafka-protocol broker on localhost.

tansu (its own process) for the archiving itself; librdkafka's mock cluster where exact
end offsets matter (the lag), since tansu's ListOffsets answer is wrong. Expected layouts
come from the records and the partitions the producer reported (kafka_support).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition

from tests.integration.archive.kafka_support import (
    CORRUPT,
    activation_values,
    archived_files,
    archived_lines,
    dead_letters,
    event_values,
    hour_path,
    read_topic,
)
from tests.support.kafka_brokers import Broker, produce
from udf.archive.importer import Importer
from udf.archive.kafka_archiver import KafkaArchiver
from udf.archive.kafka_client import KafkaSettings, TopicRoute, archive_lag
from udf.cli import main
from udf.errors import InputError
from udf.home import Home

pytestmark = pytest.mark.kafka


def archiver(home: Home, broker: Broker, *routes: TopicRoute, **kwargs) -> KafkaArchiver:
    return KafkaArchiver(
        home, KafkaSettings(broker.bootstrap, group="test-archiver"), routes, **kwargs
    )


def test_partitions_order_and_dead_letters_match_kafka(
    home: Home, kafka_broker: Broker, kafka_topic
) -> None:
    events, activations = kafka_topic("events"), kafka_topic("activations")
    kafka_broker.create_topic(events, 4)
    kafka_broker.create_topic(activations, 2)
    produce(kafka_broker.bootstrap, events, event_values(3_000))
    produce(kafka_broker.bootstrap, activations, activation_values(500))

    run = archiver(
        home,
        kafka_broker,
        TopicRoute("events", events),
        TopicRoute("activations", activations),
        batch_records=700,
    ).run(once=True, max_seconds=60)

    assert run.stopped == "caught up"
    for topic, kafka_name, partitions in (("events", events, 4), ("activations", activations, 2)):
        in_kafka = read_topic(kafka_broker.bootstrap, kafka_name, partitions)
        expected: dict[str, list[bytes]] = {}
        corrupt = []
        for partition, offset, value in sorted(in_kafka):  # offset order within each partition
            if value in CORRUPT:
                corrupt.append((partition, offset, value))
            else:
                expected.setdefault(hour_path(value, partition), []).append(value)
        assert archived_files(home.archive, topic) == expected
        dead = dead_letters(home.deadletter, topic)
        assert sorted((d["partition"], d["offset"], d["raw"].encode()) for d in dead) == corrupt
        assert all(d["source"] == f"kafka:{kafka_name}" and d["kind"] and d["reason"] for d in dead)
        totals = next(t for t in run.topics if t.topic == topic)
        assert (totals.records, totals.corrupt) == (len(in_kafka) - len(corrupt), len(corrupt))
        assert totals.misplaced == 0  # librdkafka's murmur2 partitioner agrees with the archive's
        ends = Counter(p for p, _, _ in in_kafka)
        assert {(r.partition, r.archived, r.lag) for r in run.lag if r.topic == topic} == {
            (p, ends[p], 0) for p in range(partitions)
        }
    assert json.loads((home.archive / "events" / "_topic.json").read_text())["partitions"] == 4
    listed = CliRunner().invoke(main, ["data", "deadletters", "--topic", "events", "--limit", "1"])
    newest = dead_letters(home.deadletter, "events")[-1]
    assert f"partition {newest['partition']} offset {newest['offset']}" in listed.output

    again = archiver(home, kafka_broker, TopicRoute("events", events)).run(
        once=True, max_seconds=60
    )
    assert again.topics[0].records == 0 and again.stopped == "caught up"


def test_records_not_keyed_by_user_are_kept_where_they_arrived_and_counted(
    home: Home, kafka_broker: Broker, kafka_topic
) -> None:
    from confluent_kafka import Producer

    keyed, pinned = kafka_topic("keyed"), kafka_topic("pinned")
    for name in (keyed, pinned):
        kafka_broker.create_topic(name, 3)
    values = event_values(300, corrupt_share=0.0, seed=5)
    # where a user_id-keyed producer puts each record, as librdkafka reports it
    home_partition: dict[bytes, int] = {}
    producer = Producer(
        {"bootstrap.servers": kafka_broker.bootstrap, "partitioner": "murmur2_random"}
    )
    for value in values:
        key = json.loads(value)["user_id"].to_bytes(8, "big", signed=True)
        producer.produce(
            keyed,
            value=value,
            key=key,
            on_delivery=lambda err, msg, v=value: home_partition.__setitem__(v, msg.partition()),
        )
    for value in values:  # the same records, all into partition 0
        producer.produce(pinned, value=value, partition=0)
    producer.flush(30)

    run = archiver(home, kafka_broker, TopicRoute("events", pinned)).run(once=True, max_seconds=60)

    assert run.topics[0].misplaced == sum(1 for v in values if home_partition[v] != 0) > 0
    assert {path.split("/")[-1] for path in archived_files(home.archive, "events")} == {
        "part-0.jsonl"
    }


def test_a_partition_count_unlike_the_archives_is_refused(
    home: Home, kafka_broker: Broker, kafka_topic, tmp_path: Path
) -> None:
    name = kafka_topic("events")
    kafka_broker.create_topic(name, 4)
    source = tmp_path / "e.jsonl"
    source.write_bytes(b"\n".join(event_values(10, corrupt_share=0.0)) + b"\n")
    Importer(home).import_files("events", [str(source)])  # the archive's default: 8 partitions

    with pytest.raises(
        InputError, match=r"archive topic 'events' has 8 partitions but Kafka topic .* has 4"
    ):
        archiver(home, kafka_broker, TopicRoute("events", name)).run(once=True)


def test_lag_per_partition_is_end_minus_archived(
    home: Home, kafka_mock: Broker, kafka_topic
) -> None:
    name = kafka_topic("events")
    kafka_mock.create_topic(name, 3)
    first = produce(kafka_mock.bootstrap, name, event_values(400, corrupt_share=0.0, seed=7))
    archiver(home, kafka_mock, TopicRoute("events", name)).run(once=True, max_seconds=60)
    more = produce(kafka_mock.bootstrap, name, event_values(250, corrupt_share=0.0, seed=8))

    rows = archive_lag(
        home.archive, KafkaSettings(kafka_mock.bootstrap), [TopicRoute("events", name)]
    )

    assert {(r.partition, r.archived, r.end, r.lag) for r in rows} == {
        (p, first.get(p, 0), first.get(p, 0) + more.get(p, 0), more.get(p, 0)) for p in range(3)
    }
    result = CliRunner().invoke(
        main,
        [
            "archive",
            "lag",
            "--bootstrap",
            kafka_mock.bootstrap,
            "--topic",
            f"events={name}",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sum(r["lag"] for r in json.loads(result.output)) == 250


def test_records_kafka_deleted_before_they_were_archived_are_reported_lost(
    home: Home, kafka_mock: Broker, kafka_topic
) -> None:
    name = kafka_topic("events")
    kafka_mock.create_topic(name, 1)
    route = TopicRoute("events", name)
    produce(kafka_mock.bootstrap, name, event_values(1_000, corrupt_share=0.0, seed=11))
    archiver(home, kafka_mock, route).run(once=True, max_seconds=60)
    # the mock cluster keeps only the newest few MiB of a partition: retention, in effect
    produce(kafka_mock.bootstrap, name, event_values(100_000, corrupt_share=0.0, seed=12))
    probe = Consumer({"bootstrap.servers": kafka_mock.bootstrap, "group.id": "probe"})
    earliest, end = probe.get_watermark_offsets(TopicPartition(name, 0), timeout=10)
    probe.close()
    assert earliest > 1_000

    [row] = archive_lag(home.archive, KafkaSettings(kafka_mock.bootstrap), [route])
    assert (row.archived, row.lost, row.lag) == (1_000, earliest - 1_000, end - earliest)
    run = archiver(home, kafka_mock, route).run(once=True, max_seconds=120)
    assert (run.topics[0].lost, run.topics[0].records) == (earliest - 1_000, end - earliest)
    assert sum(archived_lines(home.archive, "events").values()) == 1_000 + end - earliest


def test_a_crash_after_the_archive_commit_but_before_kafkas_neither_loses_nor_doubles(
    home: Home, kafka_broker: Broker, kafka_topic, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = kafka_topic("events")
    kafka_broker.create_topic(name, 2)
    values = event_values(1_000, seed=9)
    produce(kafka_broker.bootstrap, name, values)
    route = TopicRoute("events", name)

    import udf.archive.kafka_archiver as module

    real_commit = module.ArchiveWriter.commit
    calls = {"n": 0}

    def commit_then_die(self, stage, extra=None):
        real_commit(self, stage, extra)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(module.ArchiveWriter, "commit", commit_then_die)
    with pytest.raises(KeyboardInterrupt):
        archiver(home, kafka_broker, route, batch_records=300).run(once=True, max_seconds=60)
    monkeypatch.undo()

    archiver(home, kafka_broker, route, batch_records=300).run(once=True, max_seconds=60)

    assert calls["n"] >= 2  # it did die mid-topic, with Kafka's offsets behind the archive's
    assert archived_lines(home.archive, "events") == Counter(v for v in values if v not in CORRUPT)
    assert Counter(d["raw"].encode() for d in dead_letters(home.deadletter, "events")) == Counter(
        v for v in values if v in CORRUPT
    )


def test_the_service_stops_cleanly_on_sigterm(
    home: Home, kafka_broker: Broker, kafka_topic
) -> None:
    name = kafka_topic("events")
    kafka_broker.create_topic(name, 2)
    produce(kafka_broker.bootstrap, name, event_values(500, corrupt_share=0.0, seed=10))
    service = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("udf")),
            "--home",
            str(home.root),
            "archive",
            "kafka",
            "--bootstrap",
            kafka_broker.bootstrap,
            "--topic",
            f"events={name}",
            "--batch-seconds",
            "0.2",
            "--format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while sum(archived_lines(home.archive, "events").values()) < 500:
            assert time.monotonic() < deadline and service.poll() is None, (
                service.stderr and service.stderr.read()
            )
            time.sleep(0.2)
        service.send_signal(signal.SIGTERM)
        out, err = service.communicate(timeout=30)
    finally:
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0, err
    [report] = json.loads(out)
    assert report["stopped"] == "stopped" and report["topics"][0]["records"] == 500
    committed = _committed(kafka_broker.bootstrap, "udf-archiver", name, 2)
    assert sum(committed) == 500  # Kafka's tools see the archiver caught up


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return [
            tp.offset
            for tp in consumer.committed(
                [TopicPartition(topic, p) for p in range(partitions)], timeout=10
            )
        ]
    finally:
        consumer.close()


def test_two_archivers_on_one_archive_write_each_record_once(
    home: Home, kafka_broker: Broker, kafka_topic
) -> None:
    name = kafka_topic("events")
    kafka_broker.create_topic(name, 3)
    values = event_values(6_000, seed=13)
    produce(kafka_broker.bootstrap, name, values)
    command = [
        str(Path(sys.executable).with_name("udf")),
        "--home",
        str(home.root),
        "archive",
        "kafka",
        "--bootstrap",
        kafka_broker.bootstrap,
        "--topic",
        f"events={name}",
        "--once",
        "--batch-records",
        "500",
        "--format",
        "json",
    ]
    both = [
        subprocess.Popen(
            [*command, "--group", f"archiver-{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    reports = []
    for proc in both:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        [report] = json.loads(out)
        reports.append(report["topics"][0])

    assert archived_lines(home.archive, "events") == Counter(v for v in values if v not in CORRUPT)
    assert Counter(d["raw"].encode() for d in dead_letters(home.deadletter, "events")) == Counter(
        v for v in values if v in CORRUPT
    )
    # each record was archived by one of them: the other started past it (the ledger's offsets
    # when it began) or found it in the ledger at its commit and dropped it
    assert sum(r["records"] + r["corrupt"] for r in reports) == len(values)
