"""Benchmark the unified source: replaying a topic from the archive beside reading it from Kafka.

    .venv/bin/python benchmarks/bench_source.py [--events 500000] [--partitions 4] [--parallelism 2]

Generates events with ``udf generate``, produces them keyed by user to a local Kafka-protocol
broker (tansu, in its own process), archives the topic with the Kafka archiver, publishes the
archive's feed, then, in the same run and over the same records, times two Flink jobs (batch
execution, the same query, ``COUNT(*)`` and total characters of every line):

- **kafka** (the baseline): Flink's Kafka table over the topic, earliest to the end offsets;
- **archive**: the unified source's history (:class:`streaming.source.UnifiedSource`, the
  partition-aligned feed through Flink's filesystem source, with its event-time column).

Both counts are checked against the produced records. Job start (~10 s) is inside both
figures; the difference of the two is printed too. An untimed warm-up job goes first, then
the two jobs alternate ``--rounds`` times and the best of each is reported. Everything is deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
UDF = str(Path(sys.executable).with_name("udf"))

from tests.support.kafka_brokers import produce, start_tansu  # noqa: E402

QUERY = "SELECT COUNT(*), SUM(CAST(CHAR_LENGTH(line) AS BIGINT)) FROM {table}"


def table_env(parallelism: int, jars: list[str]):  # type: ignore[no-untyped-def]
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    config = env.get_config()
    config.set("parallelism.default", str(parallelism))
    if jars:
        config.set("pipeline.jars", ";".join(jars))
    return env


def timed(env, table: str) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    with env.execute_sql(QUERY.format(table=table)).collect() as rows:
        [(count, chars)] = [tuple(r) for r in rows]
    return time.perf_counter() - started, count, chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()

    from streaming.kafka_connector import kafka_connector_jars, kafka_table_options
    from streaming.source import PartitionFeed, TimestampExtractor, UnifiedSource
    from udf.archive.kafka_archiver import KafkaArchiver
    from udf.archive.kafka_client import KafkaSettings, TopicRoute
    from udf.home import Home

    jars = kafka_connector_jars(ROOT / ".tools" / "cache")
    base = Path(tempfile.mkdtemp(prefix="bench-source-", dir=args.tmp))
    broker = start_tansu(base / "tansu.log")
    try:
        workload = base / "workload"
        subprocess.run(
            [
                UDF,
                "generate",
                "--out",
                str(workload),
                "--events",
                str(args.events),
                "--users",
                str(max(10_000, args.events // 50)),
                "--corrupt-share",
                "0",
                "--format",
                "json",
            ],
            env=dict(os.environ, UDF_HOME=str(base / "gen")),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        files = sorted((workload / "events").glob("*.jsonl"))
        values = [line.rstrip(b"\n") for f in files for line in f.open("rb") if line.strip()]
        broker.create_topic("events", args.partitions)
        ends = produce(broker.bootstrap, "events", values)
        home = Home(base / "home").ensure()
        route = TopicRoute("events", "events")
        KafkaArchiver(home, KafkaSettings(broker.bootstrap, "bench-archiver"), [route]).run(
            once=True
        )
        feed = PartitionFeed(base / "feed", home.archive, topics=("events",))
        feed.prepare()
        feed.publish()
        chars = sum(len(v.decode()) for v in values)

        kafka_env = table_env(args.parallelism, jars)
        options = kafka_table_options(broker.bootstrap, "events", group="bench-source", stop=ends)
        kafka_env.execute_sql(
            "CREATE TABLE live (line STRING) WITH ("
            + ", ".join(f"'{k}' = '{v}'" for k, v in options.items())
            + ")"
        )
        archive_env = table_env(args.parallelism, [])
        UnifiedSource(feed, TimestampExtractor.json_field("ts")).register_topics(archive_env)
        timed(archive_env, "raw_events")  # warm-up: the JVM's first job pays for class loading
        runs: dict[str, list[tuple[float, int, int]]] = {"kafka": [], "archive": []}
        for _ in range(args.rounds):  # alternated, best of each: load from others hits both alike
            runs["kafka"].append(timed(kafka_env, "live"))
            runs["archive"].append(timed(archive_env, "raw_events"))
        kafka_s, kafka_n, kafka_chars = min(runs["kafka"])
        archive_s, archive_n, archive_chars = min(runs["archive"])
        assert kafka_n == archive_n == len(values), (kafka_n, archive_n, len(values))
        assert kafka_chars == archive_chars == chars, (kafka_chars, archive_chars, chars)

        print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"records: {len(values):,} events, {chars / 2**20:,.0f} MiB, topic with {args.partitions} "
            f"partitions on tansu; Flink parallelism {args.parallelism}, batch execution"
        )
        print(
            f"runs (s): kafka {[round(r[0], 1) for r in runs['kafka']]}, "
            f"archive {[round(r[0], 1) for r in runs['archive']]}"
        )
        print(
            f"baseline, Flink Kafka source: {kafka_s:.1f} s, {len(values) / kafka_s:,.0f} records/s"
        )
        print(
            f"unified source, archive replay: {archive_s:.1f} s, {len(values) / archive_s:,.0f} records/s"
        )
        print(
            f"ratio: the archive replay takes {archive_s / kafka_s:.2f}x the Kafka read's time "
            f"({kafka_s / archive_s:.1f}x its throughput); without job start (difference): "
            f"{kafka_s - archive_s:+.1f} s"
        )
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
