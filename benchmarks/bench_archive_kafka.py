"""Benchmark the Kafka archiver: records/s from Kafka into the archive, beside a plain consume loop.

    .venv/bin/python benchmarks/bench_archive_kafka.py [--events 1000000] [--partitions 8]

Generates events with ``udf generate`` (1% corrupt lines), produces them keyed by user to a
local broker (tansu, in its own process; librdkafka's mock cluster would not do: it keeps
only the newest few MiB of each partition), then, in the same run and from the same topic:

- **baseline**: a plain confluent-kafka consume loop over every partition to its end, with
  the same client settings and nothing done with the records but touching their bytes;
- **archiver**: ``KafkaArchiver.run(once=True)`` (validation, staging, journal, fsync,
  ledger and offset commits at the default batch size) into a fresh home;
- **importer** (context): ``udf data import`` of the generated files themselves.

Everything is deleted afterwards.
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


def consume_all(bootstrap: str, topic: str, partitions: int) -> tuple[float, int, int]:
    """Seconds, records and bytes of a plain consume loop from the beginning to every partition's end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-baseline",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    records = size = 0
    done: set[int] = set()
    started = time.perf_counter()
    while len(done) < partitions:
        for message in consumer.consume(10_000, timeout=0.2):
            if message.error() is None:
                records += 1
                size += len(message.value() or b"")
            elif message.error().code() == KafkaError._PARTITION_EOF:
                done.add(message.partition())
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed, records, size


def archive_all(bootstrap: str, topic: str, home: Path) -> tuple[float, int, int]:
    from udf.archive.kafka_archiver import KafkaArchiver
    from udf.archive.kafka_client import KafkaSettings, TopicRoute
    from udf.home import Home

    archiver = KafkaArchiver(
        Home(home), KafkaSettings(bootstrap, "bench-archiver"), [TopicRoute("events", topic)]
    )
    started = time.perf_counter()
    run = archiver.run(once=True)
    elapsed = time.perf_counter() - started
    [totals] = run.topics
    assert run.stopped == "caught up" and not any(r.lag for r in run.lag), run.as_dict()
    return elapsed, totals.records, totals.corrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-archive-kafka-", dir=args.tmp))
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
                "0.01",
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
        started = time.perf_counter()
        produce(broker.bootstrap, "events", values)
        produce_s = time.perf_counter() - started

        base_s, base_n, base_bytes = consume_all(broker.bootstrap, "events", args.partitions)
        arch_s, records, corrupt = archive_all(broker.bootstrap, "events", base / "home")
        assert base_n == records + corrupt == len(values), (base_n, records, corrupt, len(values))
        started = time.perf_counter()
        subprocess.run(
            [UDF, "data", "import", "--topic", "events", *map(str, files)],
            env=dict(os.environ, UDF_HOME=str(base / "import")),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import_s = time.perf_counter() - started

        print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print(
            f"broker: tansu, topic events with {args.partitions} partitions; "
            f"{len(values):,} records ({corrupt:,} corrupt), {base_bytes / 2**20:,.0f} MiB, "
            f"produced in {produce_s:.1f} s"
        )
        print(f"baseline plain consume loop: {base_s:.1f} s, {base_n / base_s:,.0f} records/s")
        print(
            f"udf archiver (KafkaArchiver.run once): {arch_s:.1f} s, {base_n / arch_s:,.0f} records/s "
            f"({records:,} archived, {corrupt:,} dead-lettered)"
        )
        print(f"ratio archiver / consume loop: {arch_s / base_s:.1f}x the time")
        print(
            f"context, udf data import of the same lines from files (a process): {import_s:.1f} s, "
            f"{len(values) / import_s:,.0f} lines/s"
        )
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
