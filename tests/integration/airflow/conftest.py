"""Fixtures for the Airflow layer: a session-wide Airflow on PostgreSQL, a workload, a platform per test.

See ``harness.py`` for what each piece does. PostgreSQL must be up on 127.0.0.1:5432
(user ``postgres``, trust; ``$UDF_TEST_POSTGRES_URL`` overrides): like the metadata tests,
an unreachable server fails these tests loudly instead of skipping them.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.integration.airflow import harness
from udf.home import Home

# Importing Airflow anywhere in the session must not write to ~/airflow.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="udf-airflow-home-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

WORKLOAD = [
    "--events", "20000", "--users", "2000", "--experiments", "2", "--days", "6",
    "--spammers", "1", "--spam-cap", "200", "--seed", "5",
]  # fmt: skip


def udf(*args: str) -> str:
    """Run a ``udf`` command in this process (environment as set); fail on a non-zero exit."""
    from udf.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"udf {' '.join(args)}: {result.output}"
    return result.output


@pytest.fixture(scope="session")
def databases() -> Iterator[harness.Databases]:
    try:
        dbs = harness.Databases()
        dbs.new("udf_probe")
    except Exception as exc:  # the server is down: say so once, clearly
        pytest.fail(f"PostgreSQL is not reachable at {harness.ADMIN_URL} ({exc})", pytrace=False)
    yield dbs
    dbs.drop_all()


@dataclass
class AirflowSession:
    bag: Any
    mailbox: harness.Mailbox
    env: dict[str, str]

    def dag(self, dag_id: str) -> Any:
        """A freshly parsed DAG: never reuse one across ``dag.test()`` runs in a process.

        Each run's conf is merged into the DAG's ``Param`` objects themselves (Airflow 3.3's
        ``process_params`` updates the shared ``Param`` values), so a second run of the same
        DAG object would inherit the first run's conf as its defaults. Workers parse the DAG
        per task, so this only bites in-process runs.
        """
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=harness.DAGS, safe_mode=True).get_dag(dag_id)


@pytest.fixture(scope="session")
def airflow_session(
    databases: harness.Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowSession]:
    """Airflow's metadata DB on PostgreSQL, initialised and holding the DAGs, once per session."""
    root = tmp_path_factory.mktemp("airflow")
    url = databases.new("udf_airflow")
    with harness.Mailbox.running() as mailbox:
        env = {
            "AIRFLOW_HOME": str(root / "home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
            # Airflow derives an asyncpg URL otherwise; psycopg 3 does both.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": url,
            "AIRFLOW__CORE__DAGS_FOLDER": str(harness.DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_SMTP_DEFAULT": mailbox.connection(),
            "UDF_PIPELINES_DIR": str(harness.write_pipelines(root / "pipelines")),
        }
        saved = {key: os.environ.get(key) for key in env}
        harness.configure_airflow(env)
        harness.init_airflow_db()
        bag = harness.sync_dags()
        harness.create_pools({"udf_aggregated": 2, "udf_tools": 2})
        harness.cache_execution_api()
        try:
            yield AirflowSession(bag, mailbox, env)
        finally:
            from airflow import settings

            settings.dispose_orm()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated workload imported into a template home's archive (once)."""
    root = tmp_path_factory.mktemp("workload")
    files, template = root / "files", root / "template"
    udf("generate", "--out", str(files), *WORKLOAD)
    events = sorted(str(p) for p in (files / "events").glob("*.jsonl"))
    activations = sorted(str(p) for p in (files / "activations").glob("*.jsonl"))
    udf("data", "import", "--home", str(template), "--topic", "events", *events)
    udf("data", "import", "--home", str(template), "--topic", "activations", *activations)
    return root


@dataclass
class Platform:
    """One scenario's platform: home, metadata database, ramps and catalog loaded."""

    home: Home
    metadata_url: str
    experiments: list[str]
    manifest: dict[str, Any]

    def seal(self, topic: str, through: str) -> None:
        udf("data", "seal", "--topic", topic, "--through", through)

    def seal_all(self, through: str) -> None:
        for topic in ("events", "activations"):
            self.seal(topic, through)

    def store(self) -> Any:
        from metadata.repository import MetadataStore

        return MetadataStore(self.metadata_url)

    def runs(self, **filters: Any) -> list[Any]:
        with self.store() as store:
            return store.runs(**filters)

    def states(self, scope: str = "") -> dict[tuple[str, date], str]:
        return {(r.metric, r.ds): r.state for r in self.runs(scope=scope)}

    def results(self, **filters: Any) -> list[Any]:
        from results.stores import open_store
        from udf.settings import load_settings

        with open_store(self.home, load_settings(self.home)) as store:
            return store.read(source="batch", **filters)


@pytest.fixture
def platform(
    airflow_session: AirflowSession,
    databases: harness.Databases,
    workload: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Platform:
    """A fresh home and metadata store with the workload's archive, ramps and a catalog."""
    home = Home.resolve(tmp_path / "home").ensure()
    harness.copy_archive(workload / "template", home.root)
    url = databases.new("udf_meta")
    monkeypatch.setenv("UDF_HOME", str(home.root))
    monkeypatch.setenv("UDF_METADATA_URL", url)
    manifest = json.loads((workload / "files" / "manifest.json").read_text())
    experiments = sorted(e["experiment"] for e in manifest["experiments"])
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(harness.catalog_yaml(experiments))
    udf("ramps", "import", str(workload / "files" / "ramps.csv"))
    udf("config", "load", str(catalog))
    return Platform(home, url, experiments, manifest)
