"""The deployment files stay consistent with the project (no Docker engine runs here)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_image_copies_every_package() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile
    assert "uv sync --frozen" in dockerfile


def test_the_platform_image_has_a_jdk_and_builds_the_streams_java_functions() -> None:
    """``udf stream`` compiles its Java functions with javac (streaming/jvm): a JRE alone
    would fail the stack's udf-stream service at its first command."""
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    platform = dockerfile.split(" AS platform", 1)[1].split("\nFROM ", 1)[0]
    assert "openjdk-17-jdk-headless" in platform and "-jre-" not in platform
    code = platform.index("COPY streaming ./streaming")
    assert platform.index("python -m streaming.jvm", code) > platform.index(
        "uv sync --frozen --no-dev\n", code
    )


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
    assert "for db in druid airflow" in " ".join(services["druid-metadata-db"]["command"])
    assert set(compose["volumes"]) >= {"druid-shared", "metadata", "home"}


AIRFLOW_COMPONENTS = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                      "airflow-triggerer")  # fmt: skip
STACK_SECRETS = {"AIRFLOW_JWT_SECRET": "jwt", "AIRFLOW_SECRET_KEY": "key"}


def compose_cli() -> list[str] | None:
    """``docker compose`` (the v2 plugin) or Debian's ``docker-compose``; None without either."""
    import shutil
    import subprocess

    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_validates_the_stack() -> None:
    """The Compose CLI's own validation (no engine needed: ``config`` only reads the files)."""
    import os
    import subprocess

    import pytest

    cli = compose_cli()
    if cli is None:
        pytest.skip("no Compose CLI: apt-get install -y docker-compose (Debian), or Docker's "
                    "compose plugin")  # fmt: skip
    # The CLI may be a program of the system's Python (Debian's docker-compose): it must not
    # import this environment's packages.
    system = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env = {**system, **STACK_SECRETS}
    done = subprocess.run(
        [*cli, "-f", str(ROOT / "docker" / "compose.yaml"), "config"],
        cwd=ROOT / "docker", env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(AIRFLOW_COMPONENTS) <= set(resolved["services"])
    api = resolved["services"]["airflow-api-server"]["environment"]
    assert api["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt"  # the anchors resolved
    assert api["UDF_RESULTS_STORE"] == "druid"
    # without the secrets the file refuses to resolve, naming what to set
    bare = {k: v for k, v in system.items() if k not in STACK_SECRETS}
    refused = subprocess.run(
        [*cli, "-f", str(ROOT / "docker" / "compose.yaml"), "config"],
        cwd=ROOT / "docker", env=bare, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0 and "AIRFLOW_JWT_SECRET" in refused.stderr


def test_compose_runs_airflow_spark_flink_kafka_and_a_relay_for_the_platform() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    for name in AIRFLOW_COMPONENTS:
        airflow = services[name]
        env = airflow["environment"]
        assert airflow["image"] == "udf-platform:latest" and airflow["entrypoint"] == ["airflow"]
        assert airflow["command"][0] == name.removeprefix("airflow-")
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
            "postgresql+psycopg://udf:"
        ) and env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@metadata-db:5432/airflow")
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/udf/plugins"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://airflow-api-server:8080/execution/"
        )
        assert (
            airflow["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        )
        # the platform's settings: the home, the stores, Spark and Kafka of this stack
        assert env["UDF_SPARK_MASTER"] == "spark://spark-master:7077"
        assert env["UDF_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])["host"] == "smtp-relay"
        assert "home:/data/udf" in airflow["volumes"]
    assert "airflow db migrate" in services["airflow-init"]["command"][0]
    assert "udf db migrate" in services["airflow-init"]["command"][0]
    assert "CREATE DATABASE $$db" in services["druid-metadata-db"]["command"][-1]
    assert "for db in druid airflow" in services["druid-metadata-db"]["command"][-1]

    master = services["spark-master"]["command"]
    assert master[0] == "org.apache.spark.deploy.master.Master" and "7077" in master
    assert services["spark-worker"]["command"][-1] == "spark://spark-master:7077"

    assert services["flink-jobmanager"]["build"]["target"] == "flink"
    assert services["flink-taskmanager"]["image"] == services["flink-jobmanager"]["image"]
    flink = yaml.safe_load((ROOT / "docker" / "flink-config.yaml").read_text())
    assert flink["jobmanager"]["rpc"]["address"] == "flink-jobmanager"
    assert flink["python"]["executable"] == "/opt/udf/.venv/bin/python"
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM platform AS flink" in dockerfile and "flink-connector-kafka-" in dockerfile
    assert (
        "kafka-clients-" in dockerfile
        and "UDF_FLINK_KAFKA_JARS=/opt/flink-connectors" in dockerfile
    )
    assert services["udf-stream"]["command"] == ["stream", "run"]

    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert "587" in services["smtp-relay"]["expose"]
    assert (ROOT / "docker" / ".env").read_text().strip() == "COMPOSE_PROJECT_NAME=udf"


def test_the_stacks_platform_settings_are_valid(tmp_path) -> None:
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve(tmp_path)
    (tmp_path / "settings.yaml").write_text((ROOT / "docker" / "settings.yaml").read_text())
    settings = load_settings(home, environ={"UDF_SPARK_MASTER": "spark://spark-master:7077"})
    assert settings.stream.flink_conf["rest.address"] == "flink-jobmanager"
    assert settings.stream.flink_conf["execution.target"] == "remote"
    assert settings.spark.master == "spark://spark-master:7077"
