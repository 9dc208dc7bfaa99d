"""The pipelines under a real Airflow deployment: scheduler, LocalExecutor, PostgreSQL.

No ``dag.test()`` here: ``deployment.py`` starts the API server, the scheduler and the dag
processor as subprocesses, and the tests drive them through the REST API and ``udf backfill
--server`` on a fresh platform home (archive copied from the session's workload, metadata on
PostgreSQL through the ``udf_metadata`` connection, nothing converted to Parquet yet).

- ``udf_aggregated`` (manual schedule, pool of 4) plans one day of four metrics into four
  batches; the four compute tasks run at once, each with its own Spark, on the same
  archive hours. Every task succeeds on its first try, their logs hold no error line (Spark's
  banner included), and the results equal a direct ``compute()``.
- ``udf_calendar_day`` (every 12 hours, starting 2026-01-02, paused as new DAGs are): a
  backfill from its start date is refused while it is paused, then completes with
  ``--unpause``; its first run (which ends at noon on the start date, so it would plan the
  day before) plans nothing, and no owner gets an email.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from tests.integration.airflow import harness
from tests.integration.airflow.conftest import udf
from tests.integration.airflow.deployment import Deployment

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.spark, pytest.mark.slow]

START = "2026-01-02"  # udf_calendar_day's start date
D3 = date(2026, 1, 3)
AGGREGATED = {"clicks": "click", "searches": "search", "saves": "save", "shares": "share"}
PIPELINES = {
    "aggregated": {
        "schedule": "none", "backfill_days": 0, "pool_slots": 4, "min_batch_seconds": 0,
        "retries": 1, "retry_delay_seconds": 5, "email_from": "udf@example.com",
    },
    "calendar_day": {
        "schedule": "0 */12 * * *", "start_date": START, "backfill_days": 0, "pool_slots": 1,
        "retries": 0, "email_from": "udf@example.com",
    },
}  # fmt: skip


def catalog(experiments: list[str]) -> str:
    metrics = [(name, "aggregated", event) for name, event in AGGREGATED.items()]
    metrics.append(("daily_clicks", "calendar_day", "click"))
    lines = ["metrics:"]
    for name, kind, event in metrics:
        lines += [f"  - name: {name}", f"    type: {kind}", f"    event_type: {event}",
                  f"    owners: [{name}@example.com]"]  # fmt: skip
    lines.append("experiments:")
    for experiment in experiments:
        names = ", ".join(m[0] for m in metrics)
        lines += [f"  - experiment: {experiment}", f"    metrics: [{names}]"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def deployed(
    databases: harness.Databases, workload: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deployment, harness.Mailbox, dict[str, str]]]:
    root = tmp_path_factory.mktemp("deployment")
    home = root / "home"
    harness.copy_archive(workload / "template", home)
    metadata = databases.new("udf_deploy_meta")
    pipelines = root / "pipelines"
    pipelines.mkdir()
    for kind, args in PIPELINES.items():
        spec = {"metric_type": kind, "dag_creation_args": args}
        (pipelines / f"{kind}.yaml").write_text(json.dumps(spec))
    platform = {"UDF_HOME": str(home), "UDF_METADATA_URL": metadata,
                "UDF_PIPELINES_DIR": str(pipelines)}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for key, value in platform.items():
            patch.setenv(key, value)
        experiments = sorted({line.split(",")[0] for line in
                              (workload / "files" / "ramps.csv").read_text().splitlines()[1:]})  # fmt: skip
        (root / "catalog.yaml").write_text(catalog(experiments))
        udf("ramps", "import", str(workload / "files" / "ramps.csv"))
        udf("config", "load", str(root / "catalog.yaml"))
        for topic in ("events", "activations"):
            udf("data", "seal", "--topic", topic, "--through", "2026-01-06")
    url = sa.make_url(metadata)
    connection = {"conn_type": "postgres", "host": url.host, "port": url.port,
                  "login": url.username, "schema": url.database}  # fmt: skip
    with harness.Mailbox.running() as mailbox:
        workers = {
            "UDF_HOME": str(home),
            "UDF_PIPELINES_DIR": str(pipelines),
            # The metadata store through the Airflow connection (not $UDF_METADATA_URL): the
            # tasks pass its URL on explicitly.
            "AIRFLOW_CONN_UDF_METADATA": json.dumps(connection),
            "AIRFLOW_CONN_SMTP_DEFAULT": mailbox.connection(),
        }
        deployment = Deployment(root, databases.new("udf_deploy_airflow"), workers)
        started = time.monotonic()
        try:
            deployment.start()
            deployment.wait_for_dags("udf_aggregated", "udf_calendar_day")
            for pool, slots in (("udf_aggregated", 4), ("udf_calendar_day", 1)):
                deployment.ok("POST", "/api/v2/pools",
                              {"name": pool, "slots": slots, "include_deferred": False})  # fmt: skip
            print(f"\ndeployment up in {time.monotonic() - started:.0f} s")
            yield deployment, mailbox, platform
        finally:
            deployment.stop()
    assert deployment.leftovers == [], "processes survived the deployment"


def test_parallel_batches_succeed_on_their_first_try_and_equal_compute(deployed, monkeypatch):
    deployment, mailbox, platform = deployed
    started = time.monotonic()
    deployment.ok("PATCH", "/api/v2/dags/udf_aggregated", {"is_paused": False})
    run = deployment.ok(
        "POST", "/api/v2/dags/udf_aggregated/dagRuns", {"logical_date": "2026-01-04T00:00:00Z"}
    )  # a manual run for 2026-01-04 00:00 plans 2026-01-03
    finished = deployment.wait_for_run("udf_aggregated", run["dag_run_id"])
    print(f"udf_aggregated run: {time.monotonic() - started:.0f} s")
    tis = deployment.task_instances("udf_aggregated", run["dag_run_id"])
    assert finished["state"] == "success", tis
    summary = {(t["task_id"], t["map_index"]): (t["state"], t["try_number"]) for t in tis}
    batches = [t for t in tis if t["task_id"] == "compute_batch"]
    assert len(batches) >= 4, summary
    for key, (state, tries) in summary.items():
        if key[0] != "fail_if_a_batch_failed":  # skipped: nothing failed
            assert (state, tries) == ("success", 1), summary
    # In parallel: every batch started before any of them ended.
    starts = [datetime.fromisoformat(t["start_date"]) for t in batches]
    ends = [datetime.fromisoformat(t["end_date"]) for t in batches]
    assert max(starts) < min(ends), [
        (t["map_index"], t["start_date"], t["end_date"]) for t in batches
    ]
    # Spark's start-up banner is not logged as an error in a green task's log.
    for ti in batches:
        errors = [line for line in deployment.task_log(ti) if line.get("level") == "error"]
        assert errors == [], errors[:5]

    for key, value in platform.items():
        monkeypatch.setenv(key, value)
    from metadata.repository import MetadataStore
    from metric_types.compute import compute
    from results.stores import open_store
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve()
    with MetadataStore.for_home(home) as store:
        states = {(r.metric, r.ds): r.state for r in store.runs() if r.metric_type == "aggregated"}
    # The configured metrics and the defaults (one per event type), all done for 2026-01-03.
    assert set(states.values()) == {"done"} and {ds for _, ds in states} == {D3}
    metrics = sorted(metric for metric, _ in states)
    assert set(AGGREGATED) < set(metrics)

    def rows() -> list[tuple]:
        with open_store(home, load_settings(home)) as store:
            found = store.read(source="batch", metric_type="aggregated")
        return sorted(tuple(v for k, v in r.to_dict().items() if k != "computed_at") for r in found)

    scheduled = rows()
    assert {r[2] for r in scheduled} == set(metrics)  # field 2: metric
    compute(home, "aggregated", [D3], metrics=metrics)  # replaces the same slices
    assert scheduled == rows()
    assert mailbox.messages == []


def test_a_backfill_of_a_paused_dag_from_its_start_date(deployed, monkeypatch):
    deployment, mailbox, platform = deployed
    from udf.cli import main

    for key, value in platform.items():
        monkeypatch.setenv(key, value)
    args = ["backfill", "--metric-type", "calendar_day", "--from", START, "--to", START,
            "--server", deployment.url]  # fmt: skip
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1, refused.output
    assert "udf_calendar_day is paused" in refused.output and "--unpause" in refused.output
    assert deployment.ok("GET", "/api/v2/backfills?dag_id=udf_calendar_day")["backfills"] == []

    started = time.monotonic()
    answer = CliRunner().invoke(main, [*args, "--unpause", "--format", "json"])
    assert answer.exit_code == 0, answer.output
    backfill = json.loads(answer.output)[0]
    assert backfill["unpaused"] is True

    def complete() -> bool:
        deployment.check_alive()
        return bool(deployment.ok("GET", f"/api/v2/backfills/{backfill['id']}")["completed_at"])

    deployment.wait_for(complete, 1200, "the backfill to complete")
    print(f"udf_calendar_day backfill: {time.monotonic() - started:.0f} s")
    runs = deployment.ok("GET", "/api/v2/dags/udf_calendar_day/dagRuns?limit=100")["dag_runs"]
    backfilled = sorted(
        (r["logical_date"], r["state"]) for r in runs if r["run_type"] == "backfill"
    )
    assert backfilled == [
        ("2026-01-02T00:00:00Z", "success"),  # ends at noon: would plan 2026-01-01
        ("2026-01-02T12:00:00Z", "success"),  # ends at midnight: plans 2026-01-02
    ]

    from metadata.repository import MetadataStore
    from udf.home import Home

    with MetadataStore.for_home(Home.resolve()) as store:
        runs_of_type = [r for r in store.runs() if r.metric_type == "calendar_day"]
    assert min(r.ds for r in runs_of_type) == date(2026, 1, 2)  # nothing before the start date
    assert {(r.metric, r.ds): r.state for r in runs_of_type}[
        ("daily_clicks", date(2026, 1, 2))
    ] == "done"
    assert mailbox.messages == []
