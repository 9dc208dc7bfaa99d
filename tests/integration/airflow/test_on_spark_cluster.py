"""The aggregated pipeline's compute tasks on a Spark cluster, chosen by a setting.

The same DAG run as ``test_e2e.test_normal_run`` with ``UDF_SPARK_MASTER`` pointing at the
session's standalone cluster (a master and two one-core workers, fixture
``spark_standalone``): the compute tasks (in this process, under ``dag.test()``) must start
an application on that master, and write the rows a ``local[*]`` computation of the same
days writes. The process's session follows the setting both ways (cluster, then ``local``). Likewise
with ``UDF_SPARK_REMOTE`` pointing at the session's Spark Connect server.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import date

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.spark, pytest.mark.slow]

D2, D3, D4 = (date(2026, 1, d) for d in (2, 3, 4))


def applications(ui_url: str) -> list[str]:
    """The ids of every application the master has seen (running or finished)."""
    with urllib.request.urlopen(f"{ui_url}/json/", timeout=10) as answer:
        status = json.load(answer)
    return [a["id"] for a in status["activeapps"] + status["completedapps"]]


METRICS = ["clicks", "searches"]


def run_on(airflow_session, platform, monkeypatch, variable: str, url: str) -> list:
    """The aggregated DAG run for 2026-01-04 with ``variable`` set to ``url``: its rows."""
    from tests.integration.airflow.harness import run_dag, task_states

    platform.seal_all("2026-01-04")
    monkeypatch.setenv(variable, url)
    run = run_dag(airflow_session.dag("udf_aggregated"), ds=D4)
    assert run.state == "success", task_states(run)
    assert set(platform.states().values()) == {"done"}
    rows = platform.results(metric_type="aggregated", metrics=METRICS)
    assert {r.date for r in rows} == {"2026-01-02", "2026-01-03", "2026-01-04"}
    return rows


def local_rows(platform, monkeypatch, variable: str) -> list:
    """The same days computed again with ``variable`` unset (``local[*]``): their rows."""
    from metric_types.compute import compute

    monkeypatch.delenv(variable)
    compute(platform.home, "aggregated", [D2, D3, D4], metrics=METRICS)
    return platform.results(metric_type="aggregated", metrics=METRICS)


def test_compute_tasks_run_on_the_cluster(airflow_session, platform, spark_standalone, monkeypatch):
    from tests.integration.airflow.test_e2e import counts

    before = applications(spark_standalone.ui_url)
    rows = run_on(airflow_session, platform, monkeypatch, "UDF_SPARK_MASTER", spark_standalone.url)
    assert len(applications(spark_standalone.ui_url)) == len(before) + 1  # the tasks' session

    local = local_rows(platform, monkeypatch, "UDF_SPARK_MASTER")
    assert len(applications(spark_standalone.ui_url)) == len(before) + 1  # not on the cluster
    assert counts(rows) == counts(local)


def test_compute_tasks_run_on_spark_connect(airflow_session, platform, spark_connect, monkeypatch):
    """The same DAG run with ``UDF_SPARK_REMOTE`` (fixture ``spark_connect``): the tasks'
    session is a Connect client of that server, and the rows equal ``local[*]``'s."""
    from metric_types.spark import session
    from tests.integration.airflow.test_e2e import counts

    rows = run_on(airflow_session, platform, monkeypatch, "UDF_SPARK_REMOTE", spark_connect.url)
    assert session._target == spark_connect.url  # the tasks' session went to the server

    local = local_rows(platform, monkeypatch, "UDF_SPARK_REMOTE")
    assert session._target != spark_connect.url
    assert counts(rows) == counts(local)
