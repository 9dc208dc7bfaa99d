"""The UDF plugin: loaded by Airflow's plugin manager, its API behind Airflow's login, its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest
from click.testing import CliRunner

from tests.integration.airflow.harness import REPO

pytestmark = pytest.mark.airflow


def test_airflow_loads_the_plugin():
    script = (
        "import json\n"
        "from airflow import plugins_manager as pm\n"
        "apps, _ = pm.get_fastapi_plugins()\n"
        "plugins, errors = pm._get_plugins()\n"
        "udf = [p for p in plugins if p.name == 'udf']\n"
        "print(json.dumps({'apps': [a['url_prefix'] for a in apps], 'found': len(udf),"
        " 'views': [(v['name'], v['href'], v.get('category')) for v in udf[0].external_views],"
        " 'routes': {v['url_route']: v['href'] for v in udf[0].external_views if v.get('url_route')},"
        " 'errors': {k: str(v) for k, v in errors.items()}}))\n"
    )
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == {} and report["found"] == 1
    assert report["apps"] == ["/udf"]
    assert ["On-demand metrics", "/dags/udf_on_demand", "UDF"] in report["views"]
    assert ["Range backfill", "/dags/udf_range_backfill", "UDF"] in report["views"]
    # the views, embedded in Airflow's navigation (an iframe at /plugin/<url_route>)
    assert report["routes"] == {
        "udf-tracking": "/udf/ui/tracking",
        "udf-experiments": "/udf/ui/experiments",
        "udf-realtime": "/udf/ui/realtime",
    }


@pytest.fixture
def client(home):
    from fastapi.testclient import TestClient

    from plugins.udf_plugin import airflow_user, create_app

    app = create_app()
    app.dependency_overrides[airflow_user] = lambda: "tester"
    return TestClient(app)


def test_the_api_needs_an_airflow_login(home):
    from fastapi.testclient import TestClient

    from plugins.udf_plugin import create_app

    answer = TestClient(create_app()).get("/status")
    assert answer.status_code == 401  # Airflow's own check: no bearer token, no session cookie


def test_status_is_the_cli_json_with_counts(client, home):
    from metadata.repository import MetadataStore
    from udf.cli import main

    catalog = home.root / "catalog.yaml"
    catalog.write_text(
        "metrics:\n  - name: clicks\n    type: aggregated\n    event_type: click\n"
        "  - name: daily_clicks\n    type: calendar_day\n    event_type: click\n"
    )
    assert CliRunner().invoke(main, ["config", "load", str(catalog)]).exit_code == 0
    with MetadataStore.for_home(home) as store:
        store.set_run_state("clicks", date(2026, 1, 2), "done", "computed")
        store.set_run_state("clicks", date(2026, 1, 3), "waiting_on_source", "events late")
        store.set_run_state("daily_clicks", date(2026, 1, 3), "skipped", "outside")

    body = client.get("/status").json()
    assert body["count"] == 3 and body["states"] == {
        "done": 1,
        "waiting_on_source": 1,
        "skipped": 1,
    }
    cli = CliRunner().invoke(main, ["status", "--format", "json"])
    assert body["runs"] == json.loads(cli.output)  # the same JSON as `udf status --format json`

    only = client.get("/status", params={"metric_type": "aggregated", "state": "done"}).json()
    assert [(r["metric"], r["ds"]) for r in only["runs"]] == [("clicks", "2026-01-02")]
    assert client.get("/status", params={"state": "late"}).status_code == 422


def test_on_demand_help_lists_the_deployed_pipelines(client, monkeypatch):
    monkeypatch.setenv("UDF_PIPELINES_DIR", str(REPO / "dags" / "configs" / "pipelines"))
    body = client.get("/on-demand").json()
    assert body["on_demand"]["dag_id"] == "udf_on_demand"
    assert "aggregated" in body["metric_types"] and body["config_issues"] == []
    assert body["on_demand"]["rest"]["path"] == "/api/v2/dags/udf_on_demand/dagRuns"


def test_the_schema_and_the_swagger_page_need_a_login_too(client):
    from fastapi.testclient import TestClient

    from plugins.udf_plugin import create_app

    anonymous = TestClient(create_app())
    assert anonymous.get("/openapi.json").status_code == 401
    assert anonymous.get("/docs").status_code == 401
    assert "/status" in client.get("/openapi.json").json()["paths"]
    assert "swagger-ui" in client.get("/docs").text


def test_without_platform_settings_it_answers_503_and_creates_no_file(tmp_path):
    """No UDF_HOME, UDF_METADATA_URL or udf_metadata connection: a clear 503, and no home
    invented in the working directory or the temporary directory."""
    cwd, tmp, airflow_home = (tmp_path / name for name in ("cwd", "tmp", "airflow"))
    for folder in (cwd, tmp, airflow_home):
        folder.mkdir()
    script = (
        "import json\n"
        "from fastapi.testclient import TestClient\n"
        "from plugins.udf_plugin import airflow_user, create_app\n"
        "app = create_app()\n"
        "app.dependency_overrides[airflow_user] = lambda: 'tester'\n"
        "answer = TestClient(app).get('/status')\n"
        "print(json.dumps({'code': answer.status_code, 'body': answer.json()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UDF_", "AIRFLOW_CONN_"))}
    env.update(TMPDIR=str(tmp), AIRFLOW_HOME=str(airflow_home), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["code"] == 503
    detail = answer["body"]["detail"]
    for setting in ("udf_metadata", "UDF_METADATA_URL", "UDF_HOME", "API server"):
        assert setting in detail
    assert list(cwd.rglob("*")) == [] and list(tmp.rglob("*")) == []


def test_a_home_without_a_store_is_not_given_one(client, monkeypatch, tmp_path):
    empty = tmp_path / "not-a-home"
    monkeypatch.setenv("UDF_HOME", str(empty))
    answer = client.get("/status")
    assert answer.status_code == 503 and "holds no metadata store" in answer.json()["detail"]
    assert not empty.exists()
