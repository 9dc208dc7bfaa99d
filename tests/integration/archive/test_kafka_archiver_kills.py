"""Acceptance: the archiver, a real OS process, is SIGKILLed twice mid-topic; nothing is lost or doubled.

``udf archive kafka`` consumes two topics from tansu (a broker in its own process) in small
batches; each time the ledger shows it is a few batches into the run it is killed with
SIGKILL, wherever it is (staging, journal, apply, Kafka commit). A last run goes to the end
(``--once``). Then every produced record must be in the archive exactly once and every
corrupt one in the dead letters exactly once, compared as multisets of the produced bytes.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.archive.kafka_support import (
    CORRUPT,
    activation_values,
    archived_lines,
    dead_letters,
    event_values,
)
from tests.support.kafka_brokers import Broker, produce
from udf.archive.kafka_client import TopicRoute, archived_offsets
from udf.home import Home

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BATCH = 1_000


def archiver(home: Home, broker: Broker, routes: list[str], *extra: str) -> subprocess.Popen:
    topics = [arg for route in routes for arg in ("--topic", route)]
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("udf")),
            "--home",
            str(home.root),
            "archive",
            "kafka",
            "--bootstrap",
            broker.bootstrap,
            *topics,
            "--batch-records",
            str(BATCH),
            "--format",
            "json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ledger_lines(home: Home) -> int:
    path = home.archive / "_ledger.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_twice_mid_topic_loses_and_doubles_nothing(
    home: Home, kafka_broker: Broker, kafka_topic
) -> None:
    events, activations = kafka_topic("events"), kafka_topic("activations")
    kafka_broker.create_topic(events, 4)
    kafka_broker.create_topic(activations, 2)
    produced = {
        "events": event_values(30_000, corrupt_share=0.01, seed=21),
        "activations": activation_values(6_000, seed=22),
    }
    ends = {
        "events": produce(kafka_broker.bootstrap, events, produced["events"]),
        "activations": produce(kafka_broker.bootstrap, activations, produced["activations"]),
    }
    routes = [f"events={events}", f"activations={activations}"]
    total = sum(len(v) for v in produced.values())
    rng = random.Random(3)

    archived_at_kill = []
    # The first kill lands right after a ledger line, in the window before Kafka hears of
    # the batch; the second anywhere in the next batch.
    for delay in (0.0, rng.uniform(0.005, 0.05)):
        before = ledger_lines(home)
        proc = archiver(home, kafka_broker, routes, "--until-idle", "60")
        deadline = time.monotonic() + 120
        target = before + rng.randint(3, 6)
        while ledger_lines(home) < target:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the archiver made no progress"
            time.sleep(0.0005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        archived_at_kill.append(sum(archived_lines(home.archive, t).total() for t in produced))
    assert 0 < archived_at_kill[0] < archived_at_kill[1] < total  # both kills were mid-topic

    final = archiver(home, kafka_broker, routes, "--once", "--max-seconds", "300")
    out, err = final.communicate(timeout=360)
    assert final.returncode == 0, err
    assert json.loads(out)[0]["stopped"] == "caught up"

    for topic, values in produced.items():
        assert archived_lines(home.archive, topic) == Counter(v for v in values if v not in CORRUPT)
        dead = Counter(d["raw"].encode() for d in dead_letters(home.deadletter, topic))
        assert dead == Counter(v for v in values if v in CORRUPT)
    for topic, name in (("events", events), ("activations", activations)):
        assert archived_offsets(home.archive, TopicRoute(topic, name)) == ends[topic]
    assert not list((home.archive / "_journal").glob("*")) and not list(
        (home.archive / "_staging").glob("*")
    )
