"""The intermediate topics of the jobs apart: names per generation, the Flink tables that
write and read them, and their settings (no broker: tests/integration/streaming/test_apart.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streaming.topics import CHANGELOGS, STREAMS, new_generation, topics_of
from udf.config.stream_topics import IntermediateTopics
from udf.settings import StreamSettings


def topics(**settings):
    return topics_of(IntermediateTopics(bootstrap="k:9092", **settings), "run", "g1", parallelism=3)


def test_each_generation_and_mode_has_topics_of_its_own() -> None:
    t = topics(prefix="exp")
    assert t.name("filtered_events") == "exp.run.g1.filtered_events"
    assert t.group == "exp.run.g1.aggregation"
    assert t.partitions == 3  # stream.parallelism unless set
    assert topics(partitions=8).partitions == 8
    assert len({new_generation() for _ in range(100)}) == 100


def test_writers_send_at_least_once_keyed_by_user_and_changelogs_as_debezium() -> None:
    t = topics(properties={"security.protocol": "SSL"})
    events = t.table_options("filtered_events", writing=True)
    assert events["sink.delivery-guarantee"] == "at-least-once"
    assert (events["key.fields"], events["value.format"]) == ("user_id", "json")
    assert events["properties.security.protocol"] == "SSL"
    assert "properties.group.id" not in events
    assert "sink.parallelism" not in events  # the job's: each writer sends to every partition
    one = topics(single_writer=True)
    assert one.table_options("filtered_events", writing=True)["sink.parallelism"] == "1"
    assert "sink.parallelism" not in one.table_options("progress_events", writing=True)
    progress = t.table_options("progress_events", writing=True)
    assert (progress["key.fields"], progress["value.format"]) == ("topic", "debezium-json")
    assert set(STREAMS) > CHANGELOGS


def test_the_reader_starts_at_the_beginning_in_its_consumer_group() -> None:
    t = topics()
    options = t.table_options("valid_activations", writing=False)
    assert options["properties.group.id"] == t.group
    assert options["scan.startup.mode"] == "earliest-offset"
    assert "sink.delivery-guarantee" not in options
    assert "sink.parallelism" not in topics(single_writer=True).table_options(
        "valid_activations", writing=False
    )
    ddl = t.ddl(
        "valid_activations", [("user_id", "BIGINT NOT NULL"), ("ts", "BIGINT")], writing=False
    )
    assert ddl.startswith(
        "CREATE TEMPORARY TABLE valid_activations (`user_id` BIGINT NOT NULL, `ts` BIGINT) WITH ("
    )
    assert "'topic' = 'udf-stream.run.g1.valid_activations'" in ddl


def test_settings_refuse_bad_names_and_unknown_keys_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        StreamSettings.model_validate(
            {"topics": {"bootstrap": "k:9092", "prefix": "a b", "partition": 2}}
        )
    fields = {".".join(map(str, e["loc"])) for e in caught.value.errors()}
    assert fields == {"topics.prefix", "topics.partition"}
    assert StreamSettings().topics is None  # one pipeline unless set
