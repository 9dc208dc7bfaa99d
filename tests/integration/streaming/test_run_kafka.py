"""Issue 13: ``udf stream run`` with ``stream.source.live: kafka``, end to end.

The workload's first days are produced into two Kafka topics (tansu) and archived by the
real archiver; ``udf stream run`` (its own process and JVM) reads that history from the
archive and carries on in Kafka at the archiver's offsets while the rest of the workload
is produced. Every record is read exactly once (the pipeline's counts against what was
archived and produced), SIGTERM stops the run with a savepoint, and the stream's rows equal
batch's over the same records (the prepared home's, computed by Spark from the same files).

It runs twice: as one pipeline, and with ``stream.topics`` (issue 12's jobs apart), where the
two filter jobs read the archive and the Kafka tail and the aggregation job reads only the
intermediate topics on the same broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from streaming.pipeline import JOBS_APART
from tests.support.kafka_brokers import Broker, produce
from tests.support.streaming import (
    Prepared,
    assert_stream_equals_batch,
    finish,
    progress,
    start_stream,
    topics_settings,
    wait_for,
)
from udf.archive.kafka_archiver import KafkaArchiver
from udf.archive.kafka_client import KafkaSettings, TopicRoute
from udf.archive.layout import TOPICS
from udf.home import Home

pytestmark = [pytest.mark.flink, pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]


def workload_lines(workload: Path, topic: str) -> tuple[list[bytes], list[bytes]]:
    """The topic's records in file order, split into the first half of its files and the rest."""
    files = sorted((workload / topic).glob("*.jsonl"))
    half = len(files) // 2
    lines = [
        [line for f in part for line in f.read_bytes().split(b"\n")[:-1]]
        for part in (files[:half], files[half:])
    ]
    return lines[0], lines[1]


def archived_lines(home: Home, topic: str) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (home.archive / topic).rglob("*.jsonl"))


def read(home: Home) -> dict[str, int]:
    return {t: n.get("records", 0) for t, n in progress(home, "run")["topics"].items()}


def settled(home: Home) -> bool:
    before = progress(home, "run")["rows_written"]
    time.sleep(4)
    return progress(home, "run")["rows_written"] == before


@pytest.mark.parametrize("jobs", ["one pipeline", "apart"])
def test_run_with_a_kafka_tail_equals_batch(prepared: Prepared, kafka_broker: Broker, kafka_topic,
                                            connector_jars: Path, jobs: str) -> None:  # fmt: skip
    name = "kafka-run" if jobs == "one pipeline" else "kafka-run-apart"
    home = prepared.home(name)  # ramps, catalog, settings and batch's rows of the workload
    shutil.rmtree(home.archive)  # the archive is filled from Kafka instead
    (home.root / "cache").symlink_to(connector_jars)  # the connector's jars, fetched once
    names = {t: kafka_topic(t) for t in TOPICS}
    history, tail = {}, {}
    for topic, name in names.items():
        kafka_broker.create_topic(name, 2)
        history[topic], tail[topic] = workload_lines(prepared.workload, topic)
        produce(kafka_broker.bootstrap, name, history[topic])
    routes = [TopicRoute(t, n) for t, n in names.items()]
    KafkaArchiver(home, KafkaSettings(kafka_broker.bootstrap), routes).run(
        once=True, max_seconds=120
    )
    archived = {t: archived_lines(home, t) for t in TOPICS}  # valid ones: the archiver dead-letters
    assert all(archived.values())
    settings = yaml.safe_load((home.root / "settings.yaml").read_text())
    settings["stream"]["source"] = {"live": "kafka",
                                    "kafka": {"bootstrap": kafka_broker.bootstrap, "topics": names}}  # fmt: skip
    if jobs == "apart":  # the three jobs, joined by topics on the same broker
        settings["stream"]["topics"] = topics_settings(kafka_broker, name)
    (home.root / "settings.yaml").write_text(yaml.safe_dump(settings))

    run = start_stream(home, "run")
    wait_for(lambda: read(home) == archived, 600, "the archive to be read", run)
    for topic, name in names.items():  # the rest arrives in Kafka only, while the run reads
        produce(kafka_broker.bootstrap, name, tail[topic])
    expected = {t: archived[t] + len(tail[t]) for t in TOPICS}  # every record once
    wait_for(lambda: read(home) == expected, 600, "the Kafka tail to be read", run)
    wait_for(lambda: settled(home), 300, "the results to settle", run)
    os.kill(run.pid, signal.SIGTERM)
    out = finish(run, home, "run", timeout=300)
    if jobs == "apart":  # each job stopped with its own savepoint
        assert all(f"stopped {job}; savepoint" in out for job in JOBS_APART)
    else:
        assert "stopped; savepoint" in out
    assert read(home) == expected  # nothing more, nothing twice

    assert_stream_equals_batch(home, prepared.dates)
