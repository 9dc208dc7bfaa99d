"""Options handed to an engine as they are (``spark.conf``, ``stream.flink_conf``, ``flink.conf``,
Kafka ``properties``): written as YAML numbers and booleans, they reach it as the text it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from udf.errors import ConfigError
from udf.home import Home
from udf.settings import load_settings

SETTINGS = """
spark:
  conf: {spark.sql.shuffle.partitions: 4, spark.sql.adaptive.enabled: false}
flink:
  conf: {taskmanager.memory.network.fraction: 0.15}
stream:
  flink_conf: {state.backend.rocksdb.use-bloom-filter: true, pipeline.name: mine}
  topics:
    bootstrap: 127.0.0.1:9092
    properties: {enable.idempotence: true, linger.ms: 5}
"""


def _settings(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    home = Home.resolve(tmp_path / "home").ensure()
    (home.root / "settings.yaml").write_text(text)
    return load_settings(home, {})


def test_yaml_numbers_and_booleans_reach_the_engines_as_their_text(tmp_path: Path) -> None:
    settings = _settings(tmp_path, SETTINGS)
    assert settings.spark.conf == {
        "spark.sql.shuffle.partitions": "4", "spark.sql.adaptive.enabled": "false"
    }  # fmt: skip
    assert settings.flink.conf == {"taskmanager.memory.network.fraction": "0.15"}
    assert settings.stream.flink_conf == {
        "state.backend.rocksdb.use-bloom-filter": "true", "pipeline.name": "mine"
    }  # fmt: skip
    assert settings.stream.topics is not None
    assert settings.stream.topics.properties == {"enable.idempotence": "true", "linger.ms": "5"}


def test_an_option_that_is_not_a_scalar_is_refused_with_its_file_and_field(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        _settings(
            tmp_path,
            "stream:\n  flink_conf: {pipeline.jars: [a.jar, b.jar]}\nspark:\n  conf: {x: null}\n",
        )
    text = str(caught.value)
    assert "2 config errors" in text
    assert "settings.yaml: stream.flink_conf.pipeline.jars: Input should be a valid string" in text
    assert "settings.yaml: spark.conf.x: Input should be a valid string" in text


def test_a_rest_port_in_flink_conf_is_refused_for_flink_rest_port(tmp_path: Path) -> None:
    """The commands and the supervisor reach ``udf flink up``'s cluster at ``flink.rest_port``:
    a ``rest.port`` in ``flink.conf`` would move the cluster away from them."""
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, "flink:\n  conf: {rest.port: 9081}\n")
    assert "flink.conf: set the REST port with flink.rest_port, not rest.port" in str(caught.value)
