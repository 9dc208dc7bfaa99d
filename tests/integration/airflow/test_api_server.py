"""Against a real Airflow API server: ``udf backfill --server`` and the plugin's API.

The session's Airflow (metadata DB on PostgreSQL) gets an ``airflow api-server`` of its own
(the simple auth manager with one admin user, whose password the test writes, so
``POST /auth/token`` hands out a JWT), with the repository's ``plugins/`` folder and an
Airflow connection ``udf_metadata`` naming a metadata store. No scheduler runs: a backfill's DAG runs stay queued until the test runs
one here, as a worker would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from tests.integration.airflow import harness

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]


USER, PASSWORD = "udf", "udf-secret"


def get(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def api_metadata(databases: harness.Databases) -> str:
    """The metadata store the API server reads, through the ``udf_metadata`` connection."""
    return databases.new("udf_api_meta")


@pytest.fixture(scope="module")
def api_server(airflow_session, api_metadata: str, tmp_path_factory) -> Iterator[str]:
    url = sa.make_url(api_metadata)
    connection = {
        "conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
        "schema": url.database,
    }  # fmt: skip
    env = {
        "AIRFLOW_CONN_UDF_METADATA": json.dumps(connection),
        "UDF_HOME": str(tmp_path_factory.mktemp("api-home")),
    }
    with serve_api(airflow_session, env, tmp_path_factory.mktemp("api")) as base:
        yield base


@contextmanager
def serve_api(airflow_session, platform_env: dict[str, str], folder: Path) -> Iterator[str]:
    """``airflow api-server`` on the session's Airflow, with the plugin and one admin user
    (``USER``/``PASSWORD``) and ``platform_env`` (which replaces any inherited ``UDF_*``)."""
    port = harness.free_port()
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UDF_")},
        **airflow_session.env,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(harness.REPO / "plugins"),
        **platform_env,
    }
    log = (folder / "api-server.log").open("w")
    airflow = str(Path(sys.executable).with_name("airflow"))
    server = subprocess.Popen(
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"the API server exited ({log.name})"
            try:
                if get(f"{base}/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the API server did not start ({log.name})"
            time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


def test_udf_backfill_server_creates_runs_that_compute(airflow_session, api_server, platform):
    from airflow import settings
    from airflow.models.dagrun import DagRun

    from udf.cli import main

    platform.seal_all("2026-01-04")
    answer = CliRunner().invoke(
        main,
        ["backfill", "--metric-type", "aggregated", "--from", "2026-01-02", "--to", "2026-01-04",
         "--metric", "clicks", "--server", api_server, "--user", USER, "--password", PASSWORD,
         "--unpause", "--format", "json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert answer.exit_code == 0, answer.output
    backfill = json.loads(answer.output)[0]
    assert backfill["dag_id"] == "udf_aggregated" and backfill["id"]
    conf = backfill["dag_run_conf"]
    assert conf["metrics"] == ["clicks"] and conf["force"] is True and conf["requested_at"]
    assert (conf["from_date"], conf["to_date"]) == ("2026-01-02", "2026-01-04")
    assert backfill["unpaused"] is True  # new DAGs start paused; its runs would never start

    with settings.Session() as session:
        runs = session.scalars(
            sa.select(DagRun)
            .where(DagRun.backfill_id == backfill["id"])
            .order_by(DagRun.logical_date)
        ).all()
        created = [(r.logical_date.date(), r.run_type, r.state, r.conf) for r in runs]
    assert [c[0] for c in created] == [date(2026, 1, d) for d in (2, 3, 4)]
    assert {(str(c[1]), c[3] == conf) for c in created} == {("backfill", True)}

    # A worker runs the last one: its plan reads the conf (clicks only, forced) like any run.
    run = harness.drive(airflow_session.dag("udf_aggregated"), runs[-1].run_id)
    assert run.state == "success"
    states = {(r.metric, r.ds): r.state for r in platform.runs()}
    assert states[("clicks", date(2026, 1, 4))] == "done"
    assert {metric for metric, _ in states} == {"clicks"}


def test_the_plugin_api_is_served_behind_airflows_login(api_server, api_metadata):
    from metadata.repository import MetadataStore
    from udf.config.catalog import AggregatedMetric

    with MetadataStore(api_metadata) as store:
        store.sync_catalog(
            [AggregatedMetric(name="clicks", type="aggregated", event_type="click")], [], []
        )
        store.set_run_state("clicks", date(2026, 1, 3), "waiting_on_source", "events late")

    for path in ("/udf/status", "/udf/openapi.json", "/udf/docs"):
        status, _ = get(f"{api_server}{path}")
        assert status == 401, path  # no JWT, no cookie: Airflow's own check refuses
    status, body = get(f"{api_server}/auth/token", body={"username": USER, "password": PASSWORD})
    assert status in (200, 201), body
    token = json.loads(body)["access_token"]
    status, body = get(f"{api_server}/udf/status", token)
    assert status == 200, body
    found = json.loads(body)  # read through the udf_metadata connection
    assert found["states"] == {"waiting_on_source": 1}
    assert found["runs"][0]["reason"] == "events late"
    status, body = get(f"{api_server}/udf/on-demand", token)
    assert status == 200 and json.loads(body)["on_demand"]["dag_id"] == "udf_on_demand"
    status, body = get(f"{api_server}/udf/openapi.json", token)
    assert status == 200 and "/status" in json.loads(body)["paths"]
    status, body = get(f"{api_server}/udf/docs", token)
    assert status == 200 and "/udf/openapi.json" in body  # Swagger loads the schema under /udf
