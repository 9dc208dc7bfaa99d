"""The DAG ``udf_archive_kafka`` run by Airflow (``dag.test()``) against the local broker.

A run archives until caught up and ends; the next run, after more records arrived, carries
on where the archive ends: every record once, corrupt ones dead-lettered once. The cluster
comes from the ``udf_kafka`` connection, as in a deployment.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.integration.airflow import harness
from tests.integration.archive.kafka_support import (
    CORRUPT,
    archived_lines,
    dead_letters,
    event_values,
)
from tests.support.kafka_brokers import Broker, produce
from udf.home import Home

pytestmark = [pytest.mark.airflow, pytest.mark.kafka]


def test_each_run_archives_until_caught_up_and_the_next_carries_on(
    airflow_session, kafka_broker: Broker, kafka_topic, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = kafka_topic("events")
    kafka_broker.create_topic(name, 2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_UDF_KAFKA",
        json.dumps(
            {
                "conn_type": "kafka",
                "extra": {
                    "bootstrap.servers": kafka_broker.bootstrap,
                    "group.id": "airflow-archiver",
                },
            }
        ),
    )
    conf = {"topics": [f"events={name}"], "max_seconds": 60}
    first, later = event_values(400, seed=41), event_values(150, seed=42)

    produce(kafka_broker.bootstrap, name, first)
    run = harness.run_dag(airflow_session.dag("udf_archive_kafka"), conf=conf)
    assert run.state == "success"
    assert archived_lines(home.archive, "events") == Counter(v for v in first if v not in CORRUPT)

    produce(kafka_broker.bootstrap, name, later)
    run = harness.run_dag(airflow_session.dag("udf_archive_kafka"), conf=conf)
    assert run.state == "success"
    assert archived_lines(home.archive, "events") == Counter(
        v for v in first + later if v not in CORRUPT
    )
    assert Counter(d["raw"].encode() for d in dead_letters(home.deadletter, "events")) == Counter(
        v for v in first + later if v in CORRUPT
    )
