"""The DAG ``udf_archive_kafka``: the Kafka archiver as a periodic Airflow task.

Every run archives the configured topics until every partition is caught up, or until its
time budget runs out, then ends: it holds a worker slot only while there is work, and the
next run carries on exactly where the archive ends (the offsets live in the archive's
ledger, :mod:`udf.archive.kafka_archiver`). One run at a time; a failed run is retried.
The cluster comes from the ``udf_kafka`` connection or ``$UDF_KAFKA_BOOTSTRAP``
(:class:`udf.framework.kafka_hook.UdfKafkaHook`). New DAGs start paused: unpause it once
Kafka is configured. For archiving continuously, run ``udf archive kafka`` as a service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, dag, get_current_context, task

DAG_ID = "udf_archive_kafka"
SCHEDULE = "*/10 * * * *"
MAX_SECONDS = 540  # below the schedule's interval: runs never pile up


def build_archiver_dag() -> DAG:
    @dag(
        dag_id=DAG_ID,
        description="Archive Kafka topics into the platform's archive, exactly once",
        schedule=SCHEDULE,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["udf", "kafka", "archive"],
        params={
            "topics": Param(
                ["events", "activations"],
                type="array",
                description="Archive topics, each optionally '=<Kafka topic>'",
            ),
            "max_seconds": Param(
                MAX_SECONDS,
                type="number",
                minimum=1,
                description="Stop after this long even if not caught up",
            ),
        },
        default_args={"owner": "udf"},
        doc_md=__doc__,
        auto_register=False,
    )
    def archive_kafka() -> None:
        @task(
            task_id="archive",
            multiple_outputs=False,
            retries=3,
            retry_delay=timedelta(minutes=1),
            execution_timeout=timedelta(seconds=MAX_SECONDS * 2),
        )
        def archive() -> dict[str, Any]:
            params = get_current_context()["params"]
            return archive_topics(params["topics"], float(params["max_seconds"]))

        archive()

    return archive_kafka()


def archive_topics(topics: Sequence[str], max_seconds: float) -> dict[str, Any]:
    """Archive ``topics`` until caught up or out of time; the run's report (JSON, for XCom)."""
    from udf.archive.kafka_archiver import KafkaArchiver
    from udf.archive.kafka_client import parse_routes
    from udf.framework.kafka_hook import UdfKafkaHook
    from udf.home import Home

    archiver = KafkaArchiver(
        Home.resolve(), UdfKafkaHook().get_settings(), parse_routes(list(topics))
    )
    return archiver.run(once=True, max_seconds=max_seconds).as_dict()
