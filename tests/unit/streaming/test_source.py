"""The unified source without Flink: its settings, its refusals, the partition-aligned feed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from streaming import kafka_connector as connector
from streaming.source import PartitionFeed, SourceError, TimestampExtractor, UnifiedSource
from udf.archive.importer import Importer
from udf.archive.partitioner import partition_of
from udf.config.stream_source import SourceSettings
from udf.errors import ConfigError, ConnectorError
from udf.home import Home
from udf.settings import Settings, load_settings

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def _events(home: Home, tmp_path: Path, name: str, users: range, ts: int) -> list[bytes]:
    lines = [
        json.dumps({"user_id": u, "event_type": "click", "ts": ts + u}).encode() for u in users
    ]
    (tmp_path / name).write_bytes(b"\n".join(lines) + b"\n")
    Importer(home).import_files("events", [str(tmp_path / name)], partitions=4)
    return lines


def test_a_source_without_a_timestamp_extractor_is_refused(home: Home, tmp_path: Path) -> None:
    feed = PartitionFeed(tmp_path / "feed", home.archive)
    with pytest.raises(SourceError, match="needs a timestamp extractor"):
        UnifiedSource(feed, None)


def test_settings_forbid_unknown_keys_and_kafka_without_a_cluster(home: Home) -> None:
    (home.root / "settings.yaml").write_text(
        "stream:\n  source:\n    rate_limit: {events: 10}\n    out_of_orderness_seconds: -1\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(home)
    text = str(caught.value)
    assert (
        "stream.source.rate_limit: unknown key" in text and "out_of_orderness_seconds" in text
    )  # at once
    (home.root / "settings.yaml").write_text("stream:\n  source:\n    live: kafka\n")
    with pytest.raises(ConfigError, match="live: kafka needs kafka"):
        load_settings(home)
    assert Settings().stream.source == SourceSettings()
    assert SourceSettings.model_validate({"rate_limits": {"events": 50.0}}).rate_limits == {
        "events": 50.0
    }
    with pytest.raises(ValueError, match="rate_limits"):
        SourceSettings.model_validate({"rate_limits": {"clicks": 50.0}})
    (home.root / "settings.yaml").write_text("stream:\n  source:\n    metrics: true\n")
    with pytest.raises(ConfigError, match="metrics: true needs python_mode: process"):
        load_settings(home)
    (home.root / "settings.yaml").write_text(
        "stream:\n  python_mode: process\n  source:\n    metrics: true\n"
    )
    assert load_settings(home).stream.source.metrics


def test_asking_for_kafka_without_a_connector_is_a_clear_error(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(connector.JARS_ENV, raising=False)
    offline = [sys.executable, "-c", "import sys; sys.exit('ERROR: no network')"]
    monkeypatch.setattr(connector, "_clients", lambda spec, dest: iter([("pip", offline, False)]))
    settings = SourceSettings.model_validate(
        {"live": "kafka", "kafka": {"bootstrap": "localhost:9092"}}
    )
    source = UnifiedSource(PartitionFeed(tmp_path / "feed", home.archive), TimestampExtractor.json_field("ts"),
                           settings, follow=True, jars_cache=tmp_path / "cache")  # fmt: skip
    with pytest.raises(
        ConnectorError,
        match=r"stream.source.live is kafka, but the Flink Kafka connector is not available",
    ):
        source.jars()
    assert (
        UnifiedSource(source.feed, source.timestamp).jars() == []
    )  # the archive's tail needs none


def test_feed_folders_are_partitions_and_each_holds_its_users(home: Home, tmp_path: Path) -> None:
    first = _events(home, tmp_path, "a.jsonl", range(0, 40), T0)
    feed = PartitionFeed(tmp_path / "feed", home.archive, topics=("events",))
    feed.prepare()
    assert sorted(p.name for p in feed.topic_dir("events").iterdir()) == [
        "p=0",
        "p=1",
        "p=2",
        "p=3",
    ]
    feed.publish()
    late = _events(home, tmp_path, "b.jsonl", range(40, 50), T0)  # into the same hour, later
    assert feed.publish() is not None
    seen: list[bytes] = []
    for p in range(4):
        lines = b"".join(
            f.read_bytes() for f in sorted(feed.topic_dir("events").glob(f"p={p}/r*.jsonl"))
        )
        for line in lines.splitlines():
            assert partition_of(json.loads(line)["user_id"], 4) == p
            seen.append(line)
    assert sorted(seen) == sorted(first + late)
    assert feed.handover() == {}  # imported from files: no Kafka offsets


def test_handover_offsets_come_from_the_ledger_entries_of_the_round(
    home: Home, tmp_path: Path
) -> None:
    feed = PartitionFeed(tmp_path / "feed", home.archive, topics=("events",))
    feed.prepare()
    rounds = feed.rounds_dir
    (rounds / "r00000001.json").write_text(json.dumps({"round": 1, "chunks": [], "files": [], "kafka": {
        "events": {"prod.events": {"0": 10, "1": 4}}}}))  # fmt: skip
    (rounds / "r00000002.json").write_text(json.dumps({"round": 2, "chunks": [], "files": [], "kafka": {
        "events": {"prod.events": {"1": 9}}}}))  # fmt: skip
    assert feed.handover() == {"events": {"prod.events": {0: 10, 1: 9}}}


def test_json_field_extractor_is_sql_over_the_line() -> None:
    """A call of the Java scan (its rule: tests/integration/streaming/test_parse.py), the name
    a SQL literal."""
    assert TimestampExtractor.json_field("ts").sql == "integer_field(line, 'ts')"
    assert TimestampExtractor.json_field("it's").sql == "integer_field(line, 'it''s')"
