"""Locations (the archive and its cleaned copy as URIs) and the choice of cleaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from metric_types.columnar import cleaning_of
from udf.errors import ConfigError, InputError
from udf.home import Home
from udf.location import Location
from udf.settings import Settings, load_settings


@pytest.mark.parametrize(
    ("text", "spark_uri", "local"),
    [
        ("/data/udf/archive", "file:///data/udf/archive", True),
        ("file:///data/my%20archive/", "file:///data/my archive", True),
        ("file://localhost/data/a", "file:///data/a", True),
        ("hdfs://namenode:8020/udf/archive/", "hdfs://namenode:8020/udf/archive", False),
        ("s3a://bucket/udf/archive", "s3a://bucket/udf/archive", False),
    ],
)
def test_a_location_is_a_path_or_a_uri(text: str, spark_uri: str, local: bool) -> None:
    where = Location.of(text)
    assert (where.spark_uri, where.is_local) == (spark_uri, local)
    assert where.join("events", "dt=2026-01-01").spark_uri == spark_uri + "/events/dt=2026-01-01"


def test_a_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Location.of("archive").local_path == tmp_path / "archive"


@pytest.mark.parametrize("text", ["gs://bucket/x", "file://host/x", "s3a:///no-bucket"])
def test_other_locations_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        Location.of(text)


def test_s3a_is_read_by_pyarrow_as_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    fs, path = Location.of("s3a://bucket/udf/archive").filesystem()
    assert (type(fs).__name__, path) == ("S3FileSystem", "bucket/udf/archive")
    with pytest.raises(InputError, match="not on the local disk"):
        _ = Location.of("s3a://bucket/x").local_path


def test_control_files_are_written_whole_and_read_back(tmp_path: Path) -> None:
    where = Location.of(tmp_path.as_uri())
    assert where.read_bytes("a/b/_source.json") is None
    where.write_bytes("a/b/_source.json", b'{"x": 1}')
    assert where.read_bytes("a/b/_source.json") == b'{"x": 1}'
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == [
        "_source.json"
    ]  # no temporary left


def test_settings_take_the_archive_uri_and_refuse_a_bad_one(tmp_path: Path) -> None:
    home = Home(tmp_path)
    settings = load_settings(
        home, {"UDF_ARCHIVE_URI": "file:///srv/archive", "UDF_SPARK_CLEANING": "spark"}
    )
    assert settings.archive_location(home).local_path == Path("/srv/archive")
    assert settings.columnar_location(home).local_path == tmp_path / "columnar"
    assert settings.spark.cleaning == "spark"
    with pytest.raises(ConfigError, match="gs://"):
        load_settings(home, {"UDF_ARCHIVE_URI": "gs://bucket/archive"})


def test_auto_cleans_locally_only_for_a_local_spark_on_local_files(tmp_path: Path) -> None:
    home = Home(tmp_path)

    def choice(**raw: object) -> str:
        settings = Settings.model_validate(raw)
        return cleaning_of(
            settings, settings.archive_location(home), settings.columnar_location(home)
        )

    assert choice() == "local"
    assert choice(spark={"master": "spark://master:7077"}) == "spark"
    assert choice(spark={"remote": "sc://localhost:15002"}) == "spark"
    assert choice(archive={"uri": "s3a://bucket/archive"}) == "spark"
    assert choice(spark={"cleaning": "spark"}) == "spark"
    assert choice(spark={"cleaning": "local", "master": "spark://m:7077"}) == "local"
    with pytest.raises(InputError, match=r"spark\.cleaning: local"):
        choice(spark={"cleaning": "local"}, archive={"columnar_uri": "hdfs://nn:8020/c"})
