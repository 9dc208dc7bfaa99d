"""End to end: the factory's DAGs on Airflow (metadata DB on PostgreSQL) over a generated workload.

Each scenario runs the real DAG files with ``dag.test()`` (plan, mapped compute batches on
Spark, notify) against its own platform (home, metadata store on PostgreSQL), see
``conftest.py``. The workload's experiments launch on 2026-01-02; the tests' aggregated
pipeline looks back 2 days, leases live 3 s and a failed batch is retried after 4 s.
"""

from __future__ import annotations

from datetime import date

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]

D2, D3, D4, D5 = (date(2026, 1, d) for d in (2, 3, 4, 5))


def counts(rows):
    return sorted(
        (r.experiment, r.group, r.metric, r.date, r.period_start, r.segment, r.segment_value,
         r.exposed, r.volume, r.propensity, r.n, r.sum, r.sum_sq)
        for r in rows
    )  # fmt: skip


def direct(platform, days, metrics=("clicks", "searches"), experiments=None):
    """What ``compute()`` itself writes for these days (it replaces the same slices)."""
    from metric_types.compute import compute

    compute(platform.home, "aggregated", days, metrics=list(metrics), experiments=experiments)
    return platform.results(metric_type="aggregated", metrics=list(metrics))


def test_normal_run(airflow_session, platform):
    platform.seal_all("2026-01-04")
    from tests.integration.airflow.harness import run_dag, task_states

    run = run_dag(airflow_session.dag("udf_aggregated"), ds=D4)
    assert run.state == "success", task_states(run)
    states = platform.states()
    assert states, "the plan recorded nothing"
    assert set(states.values()) == {"done"}, states
    assert {ds for _, ds in states} == {D2, D3, D4}
    rows = platform.results(metric_type="aggregated", metrics=["clicks", "searches"])
    assert rows and {r.date for r in rows} >= {"2026-01-03", "2026-01-04"}
    assert counts(rows) == counts(direct(platform, [D2, D3, D4]))


def test_late_source_waits_then_is_backfilled(airflow_session, platform):
    from tests.integration.airflow.harness import run_dag

    dag = airflow_session.dag("udf_aggregated")
    platform.seal("activations", "2026-01-04")
    platform.seal("events", "2026-01-02")  # the events of 2026-01-03 are late
    assert run_dag(dag, ds=D3).state == "success"
    states = platform.states()
    assert states[("clicks", D2)] == "done"
    waiting = {r.metric: r for r in platform.runs(ds_from=D3, ds_to=D3)}
    assert waiting["clicks"].state == "waiting_on_source"
    assert "events closed only through 2026-01-03T00:00" in waiting["clicks"].reason

    platform.seal("events", "2026-01-04")  # they arrived; the next day's run backfills D3
    assert run_dag(dag, ds=D4).state == "success"
    assert set(platform.states().values()) == {"done"}
    late = next(
        r for r in platform.runs(ds_from=D3, ds_to=D3, with_events=True) if r.metric == "clicks"
    )
    path = [e.to_state for e in late.events]
    assert path[:1] == ["waiting_on_source"] and path[-3:] == [
        "backfill_queued",
        "in_progress",
        "done",
    ]
    assert {r.date for r in platform.results(metrics=["clicks"])} >= {"2026-01-03"}


def test_source_later_than_the_window_is_skipped_and_its_owner_told(airflow_session, platform):
    from tests.integration.airflow.harness import run_dag

    dag, mailbox = airflow_session.dag("udf_aggregated"), airflow_session.mailbox
    platform.seal("activations", "2026-01-05")
    platform.seal("events", "2026-01-01")  # the events of 2026-01-02 never arrive in time
    assert run_dag(dag, ds=D2).state == "success"
    assert platform.states()[("clicks", D2)] == "waiting_on_source"
    mailbox.messages.clear()
    assert run_dag(dag, ds=D5).state == "success"  # looks back 2 days: D2 is out of the window
    skipped = {r.metric: r for r in platform.runs(ds_from=D2, ds_to=D2)}
    assert skipped["clicks"].state == skipped["searches"].state == "skipped"
    assert "outside the 2-day backfill window" in skipped["clicks"].reason
    to_owner = [m for m in mailbox.messages if m["To"] == "clicks-owner@example.com"]
    assert len(to_owner) == 1, [m["Subject"] for m in mailbox.messages]
    message = to_owner[0]
    assert "skipped" in message["Subject"] and message["From"] == "udf@example.com"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "clicks" in text and "2026-01-02" in text and "Skipped" in text
    assert "searches" not in text  # the other owner's metric is in the other owner's digest
    with platform.store() as store:
        sent = store.notifications(recipient="clicks-owner@example.com", state="sent")
    assert sent


def test_worker_killed_mid_batch_is_retried_after_its_lease_expires(
    airflow_session, platform, tmp_path
):
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.integration.airflow.harness import REPO, resume_after_worker_loss, task_states

    platform.seal_all("2026-01-04")
    marker = tmp_path / "killed.json"
    script = Path(__file__).with_name("die_in_compute.py")
    worker = subprocess.run(
        [sys.executable, str(script), "udf_aggregated", "2026-01-04", str(marker)],
        env=dict(os.environ), cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert worker.returncode == -signal.SIGKILL, worker.stderr[-3000:]
    killed = json.loads(marker.read_text())
    ds = date.fromisoformat(killed["ds"][0])
    with platform.store() as store:
        lost = {r.metric: r for r in store.runs(ds_from=ds, ds_to=ds)}
        assert {lost[m].state for m in killed["metrics"]} == {"in_progress"}
        assert store.leases(include_expired=True), "the dead worker's leases are still there"

    run = resume_after_worker_loss(airflow_session.dag("udf_aggregated"), "udf_aggregated")
    tis = task_states(run)
    assert run.state == "success", tis
    assert [
        try_ for (task, _), (state, try_) in tis.items() if task == "compute_batch" and try_ > 1
    ] == [2]
    states = platform.states()
    assert set(states.values()) == {"done"}, states
    retried = {r.metric: r for r in platform.runs(ds_from=ds, ds_to=ds, with_events=True)}
    for metric in killed["metrics"]:
        assert retried[metric].attempt == 2
        assert [e.to_state for e in retried[metric].events].count("in_progress") == 2
    rows = platform.results(metric_type="aggregated", metrics=["clicks", "searches"])
    assert counts(rows) == counts(direct(platform, [D2, D3, D4]))


def test_on_demand_run_for_one_experiment(airflow_session, platform):
    from tests.integration.airflow.harness import run_dag

    platform.seal_all("2026-01-04")
    experiment = platform.experiments[0]
    conf = {
        "experiment": experiment, "metric_type": "aggregated", "metrics": ["clicks"],
        "from_date": "2026-01-03", "to_date": "2026-01-04",
    }  # fmt: skip
    run = run_dag(airflow_session.dag("udf_on_demand"), conf=conf)
    assert run.state == "success"
    assert platform.runs(scope="") == []  # the daily pipeline's lifecycle is untouched
    assert platform.states(scope=experiment) == {("clicks", D3): "done", ("clicks", D4): "done"}
    rows = platform.results(metric_type="aggregated")
    assert rows and {r.experiment for r in rows} == {experiment}
    assert {r.metric for r in rows} == {"clicks"} and {r.date for r in rows} == {
        "2026-01-03",
        "2026-01-04",
    }


def test_range_backfill(airflow_session, platform):
    from datetime import UTC, datetime

    from tests.integration.airflow.harness import run_dag
    from udf.framework.airflow_tasks import resolve_range

    platform.seal_all("2026-01-05")
    conf = {"metric_type": "aggregated", "from_date": "2026-01-02", "to_date": "2026-01-04"}
    run = run_dag(airflow_session.dag("udf_range_backfill"), conf=conf)
    assert run.state == "success"
    states = platform.states()
    assert {ds for _, ds in states} == {D2, D3, D4} and set(states.values()) == {"done"}
    # Without dates the range is the experiment's own: first ramp to the end of its last period.
    experiment = platform.experiments[0]
    periods = next(e for e in platform.manifest["experiments"] if e["experiment"] == experiment)
    starts = [p["start"] for p in periods["periods"]]
    ends = [p["end"] for p in periods["periods"]]
    day = lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC).date()  # noqa: E731
    with platform.store() as store:
        resolved = resolve_range(store, platform.home, experiment, None, None, datetime.now(UTC))
    assert resolved == (day(min(starts)), day(max(ends) - 1))


def test_a_failing_task_fails_the_run_after_notify(airflow_session, platform):
    from tests.integration.airflow.harness import run_dag, task_states

    platform.seal_all("2026-01-04")
    run = run_dag(airflow_session.dag("udf_aggregated"), ds=D4, conf={"metrics": ["no_such"]})
    states = task_states(run)
    assert run.state == "failed"  # the run is red although its last task, notify, succeeded
    assert states[("plan", -1)][0] == "failed"
    assert states[("notify", -1)][0] == "success"
    assert states[("fail_if_a_batch_failed", -1)][0] == "failed"
    assert platform.runs() == []
