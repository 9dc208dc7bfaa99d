"""Routes, client settings and lag arithmetic of the Kafka archiver (no broker needed)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from udf.archive.kafka_client import (
    KafkaSettings,
    PartitionLag,
    TopicRoute,
    parse_config,
    parse_routes,
)
from udf.cli import main
from udf.errors import InputError


def test_routes() -> None:
    assert parse_routes(["events", "activations=prod.activations"]) == [
        TopicRoute("events", "events"),
        TopicRoute("activations", "prod.activations"),
    ]
    with pytest.raises(InputError, match="must be one of events, activations"):
        TopicRoute.parse("clicks")
    with pytest.raises(InputError, match="not a valid Kafka topic name"):
        TopicRoute.parse("events=bad topic")
    with pytest.raises(InputError, match="events given more than once"):
        parse_routes(["events=a", "events=b"])


def test_settings_the_guarantees_rest_on_cannot_be_overridden() -> None:
    config = KafkaSettings("h:1", "g", parse_config(["security.protocol=SSL"])).consumer_config()
    assert config["security.protocol"] == "SSL" and config["enable.auto.commit"] is False
    with pytest.raises(InputError, match=r"cannot set enable\.auto\.commit"):
        KafkaSettings("h:1", config={"enable.auto.commit": "true"}).consumer_config()
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_config(["nonsense"])
    with pytest.raises(InputError, match="Kafka client settings"):
        KafkaSettings("h:1", config={"no.such.setting": "1"}).consumer()


@pytest.mark.parametrize(
    ("archived", "earliest", "end", "lag", "lost"),
    [
        (None, 0, 120, 120, 0),
        (100, 0, 120, 20, 0),
        (120, 0, 120, 0, 0),
        (50, 80, 120, 40, 30),
        (None, 80, 120, 40, 0),
    ],
)
def test_lag_and_records_lost_to_retention(archived, earliest, end, lag, lost) -> None:
    row = PartitionLag("events", "events", 0, archived, earliest, end)
    assert (row.lag, row.lost) == (lag, lost)


def test_cli_errors_are_one_line(tmp_path) -> None:
    result = CliRunner().invoke(
        main,
        ["--home", str(tmp_path), "archive", "kafka", "--bootstrap", "h:1", "--topic", "clicks"],
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: --topic 'clicks': the archive topic must be one of events, activations"
    ]
