"""What the Kafka archiver tests produce and how they read back the archive, independently.

Expected archive paths are computed here from the records themselves (UTC hour of ``ts``)
and the partition each record was *delivered* to, as librdkafka's producer reported it;
nothing is derived from the archiver's own code.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
HOUR = 3_600_000
CORRUPT = [
    b'{"user_id": 3, "event_type": "click", "ts": ',
    b"[1, 2, 3]",
    b'{"event_type": "click", "ts": 1767225600000}',
    b'{"user_id": "3", "event_type": "click", "ts": 1767225600000}',
    b"",
    b"not json at all",
]


def event_values(n: int, corrupt_share: float = 0.01, seed: int = 1) -> list[bytes]:
    """``n`` compact JSON events over 6 hours plus corrupt messages, shuffled together."""
    rng = random.Random(seed)
    values = [
        json.dumps(
            {
                "user_id": rng.randrange(2_000),
                "event_type": rng.choice(["click", "search"]),
                "ts": T0 + rng.randrange(6 * HOUR),
                **({"country": "de"} if rng.random() < 0.2 else {}),
            },
            separators=(",", ":"),
        ).encode()
        for _ in range(n)
    ]
    values += [rng.choice(CORRUPT) for _ in range(round(n * corrupt_share))]
    rng.shuffle(values)
    return values


def activation_values(n: int, seed: int = 2) -> list[bytes]:
    rng = random.Random(seed)
    return [
        json.dumps(
            {
                "user_id": rng.randrange(2_000),
                "experiment": "e1",
                "group": rng.choice(["control", "treatment"]),
                "ts": T0 + rng.randrange(6 * HOUR),
            },
            separators=(",", ":"),
        ).encode()
        for _ in range(n)
    ]


def read_topic(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, int, bytes]]:
    """Every record of ``topic`` as ``(partition, offset, value)``, read with a plain consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-reader",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, done = [], set()
    while len(done) < partitions:
        for m in consumer.consume(1000, timeout=1):
            if m.error() is None:
                out.append((m.partition(), m.offset(), m.value() or b""))
            elif m.error().code() == KafkaError._PARTITION_EOF:
                done.add(m.partition())
    consumer.close()
    return out


def hour_path(value: bytes, partition: int) -> str:
    ts = json.loads(value)["ts"]
    hour = datetime.fromtimestamp(ts / 1000, tz=UTC)
    return f"dt={hour:%Y-%m-%d}/hour={hour:%H}/part-{partition}.jsonl"


def archived_files(archive: Path, topic: str) -> dict[str, list[bytes]]:
    root = archive / topic
    return {
        str(f.relative_to(root)): f.read_bytes().splitlines()
        for f in sorted(root.rglob("part-*.jsonl"))
    }


def archived_lines(archive: Path, topic: str) -> Counter[bytes]:
    return Counter(line for lines in archived_files(archive, topic).values() for line in lines)


def dead_letters(deadletter: Path, topic: str) -> list[dict]:
    """The topic's dead letters, oldest import first (the ledger's order: import ids of one
    second do not sort by time)."""
    ledger = deadletter.parent / "archive" / "_ledger.jsonl"
    order = [json.loads(line)["id"] for line in ledger.read_bytes().splitlines() if line.strip()]
    files = [deadletter / topic / f"{i}.jsonl" for i in order]
    return [json.loads(line) for f in files if f.is_file() for line in f.read_bytes().splitlines()]
