"""The deployment files stay consistent with the project (no Docker engine runs here)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_image_copies_every_package() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"]["wheel"]["packages"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile
    assert "uv sync --frozen" in dockerfile


def test_compose_file_is_valid_and_wires_the_metadata_url() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    udf = compose["services"]["udf"]
    assert udf["environment"]["UDF_METADATA_URL"].startswith("postgresql+psycopg://")
    assert "metadata-db" in udf["depends_on"]
    assert compose["services"]["metadata-db"]["healthcheck"]


DRUID_SERVICES = ("zookeeper", "coordinator", "broker", "historical", "middlemanager", "router")


def test_compose_runs_druid_and_the_udf_service_writes_results_to_its_router() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    for name in DRUID_SERVICES:
        assert name in services, name
    router = services["router"]
    assert router["image"].startswith("apache/druid:") and router["command"] == ["router"]
    assert "8888:8888" in router["ports"]
    udf = services["udf"]["environment"]
    assert udf["UDF_RESULTS_STORE"] == "druid"
    assert udf["UDF_DRUID_ROUTER"] == "http://router:8888"
    for name in DRUID_SERVICES[1:]:
        service = services[name]
        assert service["image"] == router["image"]
        env = service["environment"]
        # the multi-stage query engine writes the results; metadata in the stack's PostgreSQL
        assert "druid-multi-stage-query" in env["druid_extensions_loadList"]
        assert env["druid_metadata_storage_connector_connectURI"] == (
            "jdbc:postgresql://metadata-db:5432/druid"
        )
        assert env["druid_zk_service_host"] == "zookeeper"
        assert service["depends_on"]["druid-metadata-db"]["condition"] == (
            "service_completed_successfully"
        )
    # deep storage is shared by the services that write and load segments
    for name in ("coordinator", "historical", "middlemanager"):
        assert "druid-shared:/opt/shared" in services[name]["volumes"]
    assert "CREATE DATABASE druid" in " ".join(services["druid-metadata-db"]["command"])
    assert set(compose["volumes"]) >= {"druid-shared", "metadata", "home"}
