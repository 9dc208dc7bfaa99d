"""The streaming operations DAGs: ``udf_stream_supervisor`` and ``udf_stream_upgrade``.

Thin tasks over :mod:`streaming.supervisor` (docs/streaming.md, "Operations"); the home comes
from ``$UDF_HOME`` and the Flink session cluster is the home's (``udf flink up``).

``udf_stream_supervisor`` (every 5 minutes, one run at a time): revive a dead TaskManager of
the local cluster, deploy the streaming jobs that are not running, check each job's health
over Flink's REST API (state, last checkpoint's age, restarts, exceptions, backpressure),
resubmit failed jobs from their newest checkpoint, wait for them to run again in a
reschedule-mode sensor (no worker slot held while waiting), and email the alert recipients
about jobs that could not be recovered.

``udf_stream_upgrade`` (triggered, e.g. after deploying new code): stop a job with a
savepoint, wait for the savepoint (reschedule-mode sensor), redeploy from it, wait until it
runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Param, dag, get_current_context, task

START = datetime(2026, 1, 1, tzinfo=UTC)
POKE_SECONDS = 30
WAIT_TIMEOUT = timedelta(minutes=30)


def _home() -> Any:
    from udf.home import Home

    return Home.resolve()


class Wait(BaseSensorOperator):
    """A wait in **reschedule** mode: between pokes the task gives its worker slot back.

    (A plain sensor class: ``@task.sensor`` imports a provider module that warns at parse time
    on Airflow 3.3.2.)
    """

    def __init__(self, *, check: Callable[[Any], bool], **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", POKE_SECONDS)
        kwargs.setdefault("timeout", WAIT_TIMEOUT.total_seconds())
        super().__init__(mode="reschedule", **kwargs)
        self.check = check

    def poke(self, context: Any) -> bool:
        return bool(self.check(context))


def _recovered(context: Any) -> bool:
    from streaming import supervisor

    outcomes = context["ti"].xcom_pull(task_ids="recover") or []
    modes = [o["mode"] for o in outcomes if o["outcome"] == "resubmitted"]
    return all(supervisor.running(_home(), mode) for mode in modes)


def _savepoint_done(context: Any) -> bool:
    from streaming import supervisor

    return supervisor.savepoint_status(_home(), context["params"]["mode"]) is not None


def _running(context: Any) -> bool:
    from streaming import supervisor

    return supervisor.running(_home(), context["params"]["mode"])


@dag(
    dag_id="udf_stream_supervisor",
    description="Deploy and supervise the streaming jobs on the Flink session cluster",
    schedule="*/5 * * * *",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=["udf", "streaming", "flink"],
    params={
        "modes": Param(["run"], type="array", description="Streaming jobs to keep deployed"),
        "max_attempts": Param(
            3, type="integer", minimum=1, description="Recoveries in a row before alerting"
        ),
        "max_checkpoint_age_seconds": Param(
            600, type="number", minimum=1, description="No checkpoint for this long: stale"
        ),
    },
    default_args={"owner": "udf", "retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def udf_stream_supervisor() -> None:
    @task
    def revive_taskmanager() -> int | None:
        from streaming import supervisor

        return supervisor.revive(_home())

    @task
    def deploy() -> list[dict[str, Any]]:
        from streaming import supervisor

        modes = tuple(get_current_context()["params"]["modes"])
        return supervisor.deploy(_home(), modes)

    @task
    def check() -> list[dict[str, Any]]:
        from streaming import supervisor

        params = get_current_context()["params"]
        return supervisor.check(_home(), float(params["max_checkpoint_age_seconds"]))

    @task
    def recover(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from streaming import supervisor

        attempts = int(get_current_context()["params"]["max_attempts"])
        return [supervisor.recover(_home(), r["mode"], r["job"], attempts)
                for r in reports if r["action"] == "restart"]  # fmt: skip

    @task(trigger_rule="all_done")
    def alert_owners(outcomes: list[dict[str, Any]] | None) -> list[str]:
        from streaming import supervisor

        failures = [o for o in outcomes or [] if o["outcome"] == "unrecoverable"]
        return supervisor.alert_owners(_home(), failures)

    revived = revive_taskmanager()
    deployed = deploy()
    reports = check()
    revived >> deployed >> reports
    # A TaskFlow task takes its upstream's XComArg for the value it will hold; Airflow 3 has no
    # mypy plugin that says so (Airflow 2's went), hence the ignores.
    outcomes = recover(reports)  # type: ignore[arg-type]
    wait = Wait(task_id="wait_recovered", check=_recovered)
    outcomes >> wait >> alert_owners(outcomes)  # type: ignore[arg-type]


@dag(
    dag_id="udf_stream_upgrade",
    description="Stop a streaming job with a savepoint and redeploy it from that savepoint",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=["udf", "streaming", "flink"],
    params={"mode": Param("run", enum=["run", "replay"], description="The job to upgrade")},
    default_args={"owner": "udf", "retries": 1, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def udf_stream_upgrade() -> None:
    @task(multiple_outputs=False)
    def stop_with_savepoint() -> dict[str, Any]:
        from streaming import supervisor

        return supervisor.trigger_upgrade(_home(), get_current_context()["params"]["mode"])

    @task(multiple_outputs=False)
    def redeploy(stopped: dict[str, Any]) -> dict[str, Any]:
        from streaming import supervisor

        return supervisor.submit(_home(), stopped["mode"])

    stopped = stop_with_savepoint()
    deployed = redeploy(stopped)  # type: ignore[arg-type]  # an XComArg: see above
    stopped >> Wait(task_id="wait_savepoint", check=_savepoint_done) >> deployed
    deployed >> Wait(task_id="wait_running", check=_running)


udf_stream_supervisor()
udf_stream_upgrade()
