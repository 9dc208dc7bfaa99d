"""The streaming tests' shared workload: generated, imported and computed by batch once."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.streaming import (
    DAYS,
    GENERATE,
    START,
    Prepared,
    Replayed,
    compute_batch,
    finish,
    prepare_home,
    start_stream,
    udf,
)
from udf.home import Home


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated workload's folder (``events/``, ``activations/``, ramps, manifest)."""
    out = tmp_path_factory.mktemp("workload") / "workload"
    udf("generate", "--out", str(out), *GENERATE)
    return out


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, workload: Path) -> Iterator[Prepared]:
    root = tmp_path_factory.mktemp("streaming")
    template = Home.resolve(root / "template").ensure()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UDF_HOME", str(template.root))
        for var in ("UDF_METADATA_URL", "UDF_SPAM_CAP", "UDF_WINDOW_DAYS", "UDF_RESULTS_URL",
                    "UDF_RESULTS_STORE", "UDF_STREAM_PARALLELISM"):  # fmt: skip
            mp.delenv(var, raising=False)
        manifest = json.loads((workload / "manifest.json").read_text())
        prepare_home(template, workload, manifest)
        dates = tuple(START + timedelta(days=i) for i in range(DAYS))
        compute_batch(template, dates)
        yield Prepared(root, template.root, workload, manifest, dates)


@pytest.fixture(scope="session")
def replayed(prepared: Prepared) -> Replayed:
    """The prepared home after one whole ``udf stream replay`` (its own process): the stream
    rows beside the batch's. Tests that only read it share it; others copy it first."""
    home = prepared.home("replay")
    out = finish(start_stream(home, "replay"), home, "replay", timeout=1200)
    return Replayed(prepared, home, out)


CONNECTOR_CACHE = Path(__file__).resolve().parents[3] / ".tools" / "cache"  # kept between runs


@pytest.fixture(scope="session")
def connector_jars() -> Path:
    """The cache folder holding the Flink Kafka connector's jars (fetched once, then kept)."""
    from streaming.kafka_connector import kafka_connector_jars

    kafka_connector_jars(CONNECTOR_CACHE)
    return CONNECTOR_CACHE


@pytest.fixture
def table_env() -> Iterator[object]:
    """A streaming table environment at parallelism 1, times in UTC (one Flink per test)."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", "1")
    config.set("table.local-time-zone", "UTC")
    config.set("pipeline.auto-watermark-interval", "20ms")
    yield env


@dataclass
class StreamEnv:
    env: object
    t_env: object


@pytest.fixture
def stream_env() -> Callable[..., StreamEnv]:
    """Makes a DataStream + Table environment at parallelism 1, times in UTC, watermarks every
    20 ms; ``jars`` go in before the table environment exists (its class loader is made then)."""

    def make(jars: Sequence[str] = ()) -> StreamEnv:
        from pyflink.common import Configuration
        from pyflink.datastream import StreamExecutionEnvironment
        from pyflink.table import StreamTableEnvironment

        conf = Configuration()
        conf.set_string("parallelism.default", "1")
        conf.set_string("pipeline.auto-watermark-interval", "20ms")
        conf.set_string("python.executable", sys.executable)
        conf.set_string("python.client.executable", sys.executable)
        env = StreamExecutionEnvironment.get_execution_environment(conf)
        if jars:
            env.add_jars(*jars)
        t_env = StreamTableEnvironment.create(env)
        t_env.get_config().set("table.local-time-zone", "UTC")
        return StreamEnv(env, t_env)

    return make
