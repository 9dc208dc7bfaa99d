"""Issue 12: with ``stream.topics`` the jobs run apart, joined by Kafka topics (tansu).

* A replay runs the two filter jobs and the aggregation job as three Flink jobs; the
  aggregation job reads only the topics, so its rows equal batch's only if every record
  crossed them. The topics of the replay are removed once it has finished.
* A paced replay (``--rate``) feeds the filter jobs at the rate; once all is fed and
  counted they are drained, then the aggregation job as in a replay; the rows equal batch's.
* An aligned replay (``stream.source.alignment``) feeds them slice by slice: the two topics'
  newest event times stay within the drift the whole time, and the rows equal batch's.
* A run is killed with SIGKILL once every job has a checkpoint. Before the rerun the filter
  jobs' checkpoints are removed, as if they had been killed before their first one: they
  start again from the beginning and send every record a second time, while the
  aggregation job resumes from its checkpoint past them. Nothing may be counted twice:
  the rows still equal batch, and a SIGTERM stops each job with a savepoint. With
  ``stream.topics`` then removed, a fresh start removes the run's topics.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from streaming.runner import Runner
from streaming.topics import Topics, topics_of
from tests.support.kafka_brokers import Broker
from tests.support.streaming import (
    JOBS_APART,
    Prepared,
    apart_home,
    assert_stream_equals_batch,
    finish,
    json_report,
    kill_group,
    output_of,
    progress,
    rows_of,
    start_stream,
    topic_names,
    wait_for,
)
from udf.home import Home
from udf.settings import load_settings

pytestmark = [pytest.mark.flink, pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]


def archived(home: Home, topic: str) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (home.archive / topic).rglob("*.jsonl"))


def test_a_replay_with_the_jobs_apart_equals_batch(prepared: Prepared, kafka_broker: Broker,
                                                   connector_jars: Path) -> None:  # fmt: skip
    home = apart_home(prepared, "apart-replay", kafka_broker, connector_jars)
    out = finish(start_stream(home, "replay", "--format", "json"), home, "replay", timeout=900)
    report = json_report(out)
    assert report["status"] == "FINISHED"
    crossing = report["kafka_topics"]
    assert {t.rsplit(".", 1)[1] for t in crossing} == {
        "filtered_events", "valid_activations", "progress_events", "progress_activations"
    }  # fmt: skip
    assert {t: n["records"] for t, n in report["topics"].items()} == {
        t: archived(home, t) for t in ("events", "activations")
    }  # fmt: skip
    stream = assert_stream_equals_batch(home, prepared.dates)
    assert report["rows_written"] >= len(stream)  # counted to the drain's last writes
    assert not topic_names(kafka_broker, "test-apart-replay"), (
        "a finished replay's topics are removed"
    )


def test_a_paced_replay_with_the_jobs_apart_equals_batch(prepared: Prepared, kafka_broker: Broker,
                                                         connector_jars: Path) -> None:  # fmt: skip
    home = apart_home(prepared, "apart-paced", kafka_broker, connector_jars)
    records = sum(archived(home, t) for t in ("events", "activations"))
    rate = 2000.0
    started = time.monotonic()
    out = finish(start_stream(home, "replay", "--rate", str(rate)), home, "replay", timeout=900)
    assert time.monotonic() - started >= records / rate  # released at the rate, no faster
    for job in JOBS_APART[:2]:  # they follow the feed: drained once all was fed and counted
        assert f"all fed and read: draining {job}" in out
        assert f"{job} finished" in out
    assert "every topic read to its end: draining the aggregation job" in out
    assert_stream_equals_batch(home, prepared.dates)
    assert not topic_names(kafka_broker, "test-apart-paced"), (
        "a finished replay's topics are removed"
    )


def while_replaying(process, home: Home) -> tuple[list[int], int]:
    """Every quarter second until ``process`` ends: how far the newest event time of one
    topic is ahead of the other's in the pipeline's progress report (milliseconds); and the
    most feed rounds seen published."""
    leads, rounds = [], 0
    published = home.root / "stream" / "replay" / "feed" / "_rounds"
    while process.poll() is None:
        rounds = max(rounds, len(list(published.glob("r*.json"))))
        newest = [t.get("max_ts") for t in progress(home, "replay")["topics"].values()]
        if len(newest) == 2 and None not in newest:
            leads.append(abs(newest[0] - newest[1]))
        time.sleep(0.25)
    return leads, rounds


def test_an_aligned_replay_with_the_jobs_apart_equals_batch(
    prepared: Prepared, kafka_broker: Broker, connector_jars: Path
) -> None:
    drift_s = 6 * 3600  # slices of 3 hours over the workload's 7 days
    home = apart_home(prepared, "apart-aligned", kafka_broker, connector_jars, monitor_seconds=0.5,
                      source={"alignment": {"group": "udf", "max_drift_seconds": drift_s}})  # fmt: skip
    process = start_stream(home, "replay")
    leads, rounds = while_replaying(process, home)
    out = finish(process, home, "replay", timeout=900)
    assert rounds > 20  # a round per slice of 3 hours (56 in 7 days); unaligned, one round
    for job in JOBS_APART[:2]:  # fed slice by slice: drained once all was fed and counted
        assert f"all fed and read: draining {job}" in out
    assert "every topic read to its end: draining the aggregation job" in out
    # the topics were read in lockstep: within the drift, plus the gap between a topic's
    # records (4.9 hours at most in a run on 2026-12-06)
    assert len(leads) > 10 and max(leads) <= 2 * drift_s * 1000, max(leads) / 3_600_000
    assert_stream_equals_batch(home, prepared.dates)
    assert not topic_names(kafka_broker, "test-apart-aligned"), (
        "a finished replay's topics are removed"
    )


def test_a_run_apart_killed_resumes_each_job_and_copies_count_once(
    prepared: Prepared, kafka_broker: Broker, connector_jars: Path
) -> None:
    # Everything is imported before the run starts: one feed round, never retired (it is
    # read again by the filter jobs that lose their checkpoints below).
    home = apart_home(prepared, "apart-run", kafka_broker, connector_jars,
                      feed_interval_seconds=3600)  # fmt: skip
    jobs = home.root / "stream" / "run" / "jobs"
    expected = {t: archived(home, t) for t in ("events", "activations")}

    def read() -> dict[str, int]:
        return {t: n.get("records", 0) for t, n in progress(home, "run")["topics"].items()}

    first = start_stream(home, "run")
    wait_for(
        lambda: read() == expected and rows_of(home, "stream")
        and all(any(jobs.glob(f"{job}/checkpoints/*/chk-*/_metadata")) for job in JOBS_APART),
        900, "every record read, rows written and a checkpoint of every job", first,
    )  # fmt: skip
    corrupt = {t: n["corrupt"] for t, n in progress(home, "run")["topics"].items()}
    kill_group(first)
    assert first.returncode == -9
    for job in JOBS_APART[:2]:  # killed before their first checkpoint, as it were
        shutil.rmtree(jobs / job / "checkpoints")

    second = start_stream(home, "run")
    wait_for(lambda: "started aggregation (resumed)" in output_of(home, "run"), 300,
             "the aggregation job to resume", second)  # fmt: skip
    out = output_of(home, "run")
    assert "started filter_events (from the beginning)" in out
    assert "started filter_activations (from the beginning)" in out
    # (the progress the aggregation job restored says all was read already: look at the topics)
    topics = run_topics(home)
    valid = {t: expected[t] - corrupt[t] for t in expected}
    wait_for(
        lambda: records_in(topics, "filtered_events") >= 2 * valid["events"]
        and records_in(topics, "valid_activations") >= 2 * valid["activations"],
        600, "the filter jobs to send every record again", second,
    )  # fmt: skip
    wait_for(topics.read_to_end, 300, "the aggregation job to read the copies", second)
    wait_for(lambda: settled(home), 300, "the results to settle", second)
    os.kill(second.pid, signal.SIGTERM)
    out = finish(second, home, "run", timeout=300)
    for job in JOBS_APART:
        assert f"stopped {job}; savepoint" in out
    assert read() == expected  # the restarted filter jobs counted each record once

    assert_stream_equals_batch(home, prepared.dates)

    # Back to one pipeline: a fresh start removes the run's topics, on the broker its saved
    # plan names, though stream.topics is no longer set.
    generation = f"{topics.settings.prefix}.run.{topics.generation}."
    assert topic_names(kafka_broker, generation)
    settings = yaml.safe_load((home.root / "settings.yaml").read_text())
    del settings["stream"]["topics"]
    (home.root / "settings.yaml").write_text(yaml.safe_dump(settings))
    Runner(home, load_settings(home), "run").prepare(fresh=True)
    assert topic_names(kafka_broker, generation) == set()


def run_topics(home: Home) -> Topics:
    saved = pickle.loads((home.root / "stream" / "run" / "plan.pickle").read_bytes())
    stream = load_settings(home).stream
    assert stream.topics is not None
    return topics_of(stream.topics, "run", saved.generation, stream.parallelism)


def records_in(topics: Topics, stream: str) -> int:
    """Records in ``stream``'s topic, read to the end of each partition."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    reader = Consumer({"bootstrap.servers": topics.settings.bootstrap, "group.id": "test-count",
                       "enable.partition.eof": True, "enable.auto.commit": False})  # fmt: skip
    reader.assign([TopicPartition(topics.name(stream), p, 0) for p in range(topics.partitions)])
    count, ends, deadline = 0, 0, time.monotonic() + 120
    while ends < topics.partitions and time.monotonic() < deadline:
        message = reader.poll(1.0)
        if message is None:
            continue
        if message.error() is None:
            count += 1
        elif message.error().code() == KafkaError._PARTITION_EOF:
            ends += 1
    reader.close()
    assert ends == topics.partitions, "read to the end of every partition"
    return count


def settled(home: Home) -> bool:
    before = progress(home, "run")["rows_written"]
    time.sleep(4)
    return progress(home, "run")["rows_written"] == before
