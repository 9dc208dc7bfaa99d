"""The connector helper: offsets in Flink's spelling, given jars checked, a clear error when none."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import streaming.kafka_connector as connector
from udf.errors import ConnectorError


def test_specific_offsets_and_table_options() -> None:
    assert connector.specific_offsets({1: 7, 0: 42}) == "partition:0,offset:42;partition:1,offset:7"
    options = connector.kafka_table_options(
        "h:9092", "events", group="g", start={0: 3}, stop={0: 9}
    )
    assert options["scan.startup.mode"] == "specific-offsets"
    assert options["scan.startup.specific-offsets"] == "partition:0,offset:3"
    assert options["scan.bounded.specific-offsets"] == "partition:0,offset:9"
    unbounded = connector.kafka_table_options("h:9092", "events", group="g")
    assert (
        unbounded["scan.startup.mode"] == "earliest-offset" and "scan.bounded.mode" not in unbounded
    )


def test_jars_named_in_the_environment_are_used_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for jar in ("flink-connector-kafka-4.0.1-2.0.jar", "kafka-clients-3.9.1.jar"):
        (tmp_path / jar).write_bytes(b"")
    monkeypatch.setenv(connector.JARS_ENV, str(tmp_path))
    assert sorted(
        Path(u.removeprefix("file://")).name for u in connector.kafka_connector_jars()
    ) == ["flink-connector-kafka-4.0.1-2.0.jar", "kafka-clients-3.9.1.jar"]
    (tmp_path / "kafka-clients-3.9.1.jar").unlink()
    with pytest.raises(ConnectorError, match="no kafka-clients jar"):
        connector.kafka_connector_jars()
    monkeypatch.setenv(connector.JARS_ENV, str(tmp_path / "nope.jar"))
    with pytest.raises(ConnectorError, match="does not exist"):
        connector.kafka_connector_jars()


def test_no_way_to_download_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(connector.JARS_ENV, raising=False)
    offline = [sys.executable, "-c", "import sys; sys.exit('ERROR: no network')"]
    monkeypatch.setattr(connector, "_clients", lambda spec, dest: iter([("pip", offline, False)]))
    with pytest.raises(
        ConnectorError, match=r"not available: .*pip: ERROR: no network.*UDF_FLINK_KAFKA_JARS"
    ):
        connector.kafka_connector_jars(tmp_path)
    assert not any(tmp_path.glob(f"{connector.PACKAGE}*"))  # nothing half-fetched is left
