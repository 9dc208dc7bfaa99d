"""PyFlink 2.3 reads a topic of the local broker with the connector jars from the cache.

The handover a reader of the archive needs: the archiver archives what the topic holds,
more records arrive, and a Flink Kafka table started at the archive's next offsets (from
the ledger) and bounded at the end offsets reads exactly the records the archive lacks.
Archive plus Flink is then every produced record, once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.integration.archive.kafka_support import archived_lines, event_values
from tests.support.kafka_brokers import Broker, produce
from udf.archive.kafka_archiver import KafkaArchiver
from udf.archive.kafka_client import KafkaSettings, TopicRoute, archived_offsets
from udf.home import Home

pytestmark = [pytest.mark.flink, pytest.mark.kafka]

CACHE = Path(__file__).resolve().parents[3] / ".tools" / "cache"  # kept between runs


def test_flink_reads_from_where_the_archive_ends(
    home: Home, kafka_broker: Broker, kafka_topic
) -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from streaming.kafka_connector import kafka_connector_jars, kafka_table_options

    name = kafka_topic("events")
    kafka_broker.create_topic(name, 3)
    first = event_values(300, corrupt_share=0.0, seed=31)
    ends = produce(kafka_broker.bootstrap, name, first)
    route = TopicRoute("events", name)
    KafkaArchiver(home, KafkaSettings(kafka_broker.bootstrap), [route]).run(
        once=True, max_seconds=60
    )
    later = event_values(200, corrupt_share=0.0, seed=32)
    more = produce(kafka_broker.bootstrap, name, later)
    start = archived_offsets(home.archive, route)
    stop = {p: ends.get(p, 0) + more.get(p, 0) for p in range(3)}

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("pipeline.jars", ";".join(kafka_connector_jars(CACHE)))
    env.get_config().set("parallelism.default", "1")
    options = kafka_table_options(
        kafka_broker.bootstrap, name, group="flink-test", start=start, stop=stop
    )
    env.execute_sql(
        "CREATE TABLE live (`value` STRING, `partition` INT METADATA VIRTUAL, "
        "`offset` BIGINT METADATA VIRTUAL) WITH ("
        + ", ".join(f"'{k}' = '{v}'" for k, v in options.items())
        + ")"
    )
    with env.execute_sql("SELECT `partition`, `offset`, `value` FROM live").collect() as rows:
        read = [(row[0], row[1], row[2].encode()) for row in rows]

    assert Counter(v for _, _, v in read) == Counter(later)
    assert all(offset >= start.get(p, 0) for p, offset, _ in read)
    assert archived_lines(home.archive, "events") + Counter(v for _, _, v in read) == Counter(
        first + later
    )
