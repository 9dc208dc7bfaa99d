"""Running the factory's DAGs for real: Airflow's metadata DB, ``dag.test()``, a workload, SMTP.

One Airflow metadata database (PostgreSQL, a random name) serves the whole session: it is
created and initialised once (``airflow.utils.db.initdb``), the DAG folder is bagged and
synced to it once, and every scenario runs DAGs with ``dag.test()`` against it. The
in-process execution API that ``dag.test()`` builds for its first task costs seconds; Airflow
3.3 keeps it in ``supervisor.in_process_api_server`` (an ``lru_cache``), so every later task of
the session reuses it. :func:`cache_execution_api` makes sure of that on versions without the
cache (what astronomer-cosmos's tests patch in).

Each scenario gets its own platform: a home with a copy of the session's imported archive,
its own metadata database (PostgreSQL, random name) through ``$UDF_METADATA_URL``, the
ramps and a catalog selecting two metrics for every experiment.
"""

from __future__ import annotations

import email
import email.policy
import functools
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[3]
DAGS = REPO / "dags"
ADMIN_URL = os.environ.get(
    "UDF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
METRICS = ("clicks", "searches")
OWNERS = {"clicks": "clicks-owner@example.com", "searches": "search-owner@example.com"}
# The aggregated pipeline of the tests: a short lease and a retry that waits for it to expire.
PIPELINE = {
    "metric_type": "aggregated",
    "dag_creation_args": {
        "schedule": "@daily",
        "start_date": "2026-01-01",
        "backfill_days": 2,
        "pool_slots": 2,
        "min_batch_seconds": 0,
        "lease_ttl_seconds": 3,
        "heartbeat_seconds": 1,
        "retries": 1,
        "retry_delay_seconds": 4,
        "email_from": "udf@example.com",
    },
}


class Databases:
    """Random PostgreSQL databases, dropped (forcibly) at the end."""

    def __init__(self) -> None:
        self._admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        self._created: list[str] = []

    def new(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self._admin.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin.connect() as conn:
            for name in self._created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin.dispose()


def write_pipelines(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "aggregated.yaml").write_text(json.dumps(PIPELINE, indent=2))
    return folder


def configure_airflow(env: dict[str, str]) -> None:
    """Point Airflow (imported or not) at the session's home, database and DAG folder."""
    os.environ.update(env)
    import airflow  # noqa: F401  (reads the environment on first import)
    from airflow import settings

    settings.configure_vars()
    settings.reconfigure_orm()


def init_airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


def sync_dags() -> Any:
    """Bag the DAG folder as the dag processor would and write it to the metadata DB."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)
    return bag


def create_pools(slots: dict[str, int]) -> None:
    from airflow.models.pool import Pool

    for name, count in slots.items():
        Pool.create_or_update_pool(name, count, f"UDF {name}", include_deferred=False)


def cache_execution_api() -> None:
    """One in-process execution API per process (already the case on Airflow 3.3)."""
    from airflow.sdk.execution_time import supervisor

    if not hasattr(supervisor.in_process_api_server, "cache_info"):
        supervisor.in_process_api_server = functools.cache(supervisor.in_process_api_server)


def run_dag(dag: Any, *, ds: date | None = None, conf: dict[str, Any] | None = None) -> Any:
    """One DAG run with ``dag.test()``; for a pipeline, the run whose day is ``ds``."""
    logical = (
        datetime.combine(ds + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        if ds is not None
        else datetime.now(UTC)
    )
    return dag.test(logical_date=logical, run_conf=conf or {})


def task_states(run: Any) -> dict[tuple[str, int], tuple[str, int]]:
    from airflow import settings

    with settings.Session() as session:
        return {
            (ti.task_id, ti.map_index): (str(ti.state), ti.try_number)
            for ti in run.get_task_instances(session=session)
        }


def resume_after_worker_loss(dag: Any, dag_id: str) -> Any:
    """What the scheduler does after a worker dies mid-task, then run the DAG run to its end.

    The dead task instance is still ``running`` in the database; the scheduler's heartbeat
    timeout fails it, which with retries left means ``up_for_retry``
    (``TaskInstance.handle_failure``). Then the same minimal loop ``dag.test()`` uses runs
    whatever becomes schedulable (the retry once its delay passed) until the run finishes.
    """
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import DagRunState, TaskInstanceState

    scheduler_dag = _scheduler_dag(dag)
    with settings.Session() as session:
        run = session.scalar(
            sa.select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        )
        assert run is not None and run.state == DagRunState.RUNNING
        lost = session.scalars(
            sa.select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run.run_id,
                TaskInstance.state == TaskInstanceState.RUNNING,
            )
        ).all()
        assert lost, "no task instance was left running by the killed worker"
        for ti in lost:
            ti.task = scheduler_dag.get_task(ti.task_id)
            ti.handle_failure("worker killed: no heartbeat", session=session)
        session.commit()
        return drive(dag, run.run_id)


def drive(dag: Any, run_id: str, timeout: float = 300) -> Any:
    """Run an existing DAG run's tasks here until it finishes (``dag.test()``'s loop).

    For runs that something else created: a backfill's runs (queued, no scheduler in the
    tests) or a run whose worker died. Schedulable task instances run in this process.
    """
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState

    with settings.Session() as session:
        run = session.scalar(
            sa.select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)
        )
        assert run is not None
        run.dag = _scheduler_dag(dag)
        if run.state == DagRunState.QUEUED:
            run.state = DagRunState.RUNNING  # what the scheduler does when it starts the run
            session.commit()
        deadline = time.monotonic() + timeout
        while run.state == DagRunState.RUNNING:
            assert time.monotonic() < deadline, f"{run_id} did not finish"
            session.expire_all()
            schedulable, _ = run.update_state(session=session)
            for ti in schedulable:
                if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                    ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            scheduled = [
                ti
                for ti in run.get_task_instances(session=session)
                if ti.state == TaskInstanceState.SCHEDULED
            ]
            if not scheduled:
                time.sleep(0.5)  # e.g. a retry waiting for its retry_delay
            for ti in scheduled:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
        return run


def _scheduler_dag(dag: Any) -> Any:
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


@dataclass
class Mailbox:
    """An SMTP server on localhost that keeps every message it receives."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    _controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[Mailbox]:
        from aiosmtpd.controller import Controller

        box = cls(free_port())
        box._controller = Controller(box, hostname="127.0.0.1", port=box.port)
        box._controller.start()
        try:
            yield box
        finally:
            box._controller.stop()

    def connection(self) -> str:
        """``AIRFLOW_CONN_SMTP_DEFAULT`` for this server (JSON: booleans stay booleans)."""
        extra = {"disable_tls": True, "disable_ssl": True, "from_email": "udf@example.com"}
        return json.dumps(
            {"conn_type": "smtp", "host": "127.0.0.1", "port": self.port, "extra": extra}
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def catalog_yaml(experiments: list[str]) -> str:
    lines = ["metrics:"]
    for name, event in (("clicks", "click"), ("searches", "search")):
        lines += [
            f"  - name: {name}",
            "    type: aggregated",
            f"    event_type: {event}",
            f"    owners: [{OWNERS[name]}]",
            "    sla_hours: 30",
        ]
    lines.append("experiments:")
    for experiment in experiments:
        lines += [f"  - experiment: {experiment}", f"    metrics: [{', '.join(METRICS)}]"]
    return "\n".join(lines) + "\n"


def copy_archive(template: Path, home: Path) -> None:
    shutil.copytree(template / "archive", home / "archive")
