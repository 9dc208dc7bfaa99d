"""Shared fixtures: every test gets its own platform home."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.kafka_brokers import Broker, start_mock, start_tansu
from tests.support.spark_cluster import Cluster, start_connect, start_standalone
from udf.home import Home

# The worked example of docs/contract.md §3 (X = 2).
CONTRACT_EXAMPLES = Path(__file__).resolve().parent / "data" / "contract"

# Flink's JVMs in tests run small jobs and live for seconds to minutes: the C2 compiler
# spends more CPU on them than its code saves. With C1 alone, test_kill.py took 18% less CPU
# alone on a 2-core machine, and the streaming folder 7% less time in a clean-clone
# `make test`, where its two processes keep both cores busy. Set for every Flink JVM the
# tests start (PyFlink's, in the test process and in the commands it runs, and a session
# cluster's, whose scripts add JVM_ARGS) unless already set; the platform's own
# stream.jvm_options are unchanged. Spark's are left alone: its long-lived JVMs (the test
# process's session, a Connect server) came out slower with C1, the short ones faster.
os.environ.setdefault("JVM_ARGS", "-XX:+UseParallelGC -XX:TieredStopAtLevel=1")


@pytest.fixture(autouse=True)
def _no_pyflink_worker_env() -> None:
    """A Flink job run inside the test process with Python functions in process mode starts
    PyFlink's loopback worker pool there, which copies the JVM's worker settings into
    ``os.environ`` (pyflink/fn_execution/beam/beam_worker_pool_service.py). One of them,
    ``PYFLINK_GATEWAY_DISABLED``, would stop every later ``udf stream`` process (and anything
    else a test starts) from launching its own Flink gateway: each test starts without it."""
    os.environ.pop("PYFLINK_GATEWAY_DISABLED", None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh platform home; ``$UDF_HOME`` points at it so CLI calls use it too."""
    root = tmp_path / "home"
    monkeypatch.setenv("UDF_HOME", str(root))
    monkeypatch.delenv("UDF_METADATA_URL", raising=False)
    return Home.resolve(root).ensure()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """tansu, a Kafka-protocol broker, in its own process on a free port (one per session)."""
    broker = start_tansu(tmp_path_factory.mktemp("tansu") / "tansu.log")
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_mock() -> Iterator[Broker]:
    """librdkafka's mock cluster in its own process: exact offsets, for the lag figures."""
    broker = start_mock()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def spark_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A Spark standalone master and two one-core workers, each its own JVM (one per session)."""
    cluster = start_standalone(tmp_path_factory.mktemp("spark-standalone"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def spark_connect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A Spark Connect server on ``local[2]`` in its own JVM (one per session)."""
    cluster = start_connect(tmp_path_factory.mktemp("spark-connect"))
    yield cluster
    cluster.stop()


@pytest.fixture
def kafka_topic() -> Callable[[str], str]:
    """Fresh Kafka topic names: ``kafka_topic("events")`` -> ``events-<random>``."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"
