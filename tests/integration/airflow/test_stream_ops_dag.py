"""The streaming operations DAGs parse, have the expected tasks, and wait without a worker slot."""

from __future__ import annotations

import pytest

from tests.integration.airflow.harness import DAGS

pytestmark = pytest.mark.airflow


def test_stream_ops_dags_parse_with_their_tasks() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=DAGS / "udf_stream_ops.py", safe_mode=False)
    assert dagbag.import_errors == {}
    supervisor = dagbag.dags["udf_stream_supervisor"]
    assert set(supervisor.task_dict) == {
        "revive_taskmanager", "deploy", "check", "recover", "wait_recovered", "alert_owners",
    }  # fmt: skip
    assert supervisor.max_active_runs == 1 and supervisor.schedule == "*/5 * * * *"
    assert supervisor.task_dict["check"].upstream_task_ids == {"deploy"}
    assert supervisor.task_dict["deploy"].upstream_task_ids == {"revive_taskmanager"}
    assert supervisor.task_dict["recover"].upstream_task_ids == {"check"}
    assert supervisor.task_dict["alert_owners"].trigger_rule == "all_done"
    assert supervisor.task_dict["alert_owners"].upstream_task_ids == {"recover", "wait_recovered"}

    upgrade = dagbag.dags["udf_stream_upgrade"]
    assert upgrade.schedule is None
    assert set(upgrade.task_dict) == {
        "stop_with_savepoint", "wait_savepoint", "redeploy", "wait_running",
    }  # fmt: skip
    assert upgrade.task_dict["redeploy"].upstream_task_ids == {"stop_with_savepoint",
                                                               "wait_savepoint"}  # fmt: skip
    # every wait is a sensor in reschedule mode: no worker slot is held while waiting
    sensors = [t for d in (supervisor, upgrade) for t in d.tasks if t.task_id.startswith("wait_")]
    assert len(sensors) == 3
    assert all(s.mode == "reschedule" and s.poke_interval == 30 for s in sensors)
