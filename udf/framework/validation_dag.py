"""The DAG ``udf_validate_daily``: every day, the stream's rows checked against the batch.

Each run takes the last whole UTC day before its data interval ends (or the ``date``
param) and runs four thin tasks; the work is in :mod:`streaming.validation.run`, imported
inside the tasks, so parsing the DAG imports neither Spark nor SQLAlchemy's models:

```
recompute_batch ──> validate ──> send_emails ──> fail_on_violation
```

- ``recompute_batch`` recomputes the day's ``aggregated`` metrics in batch (``udf compute``'s
  function, in the lifecycle, leased); retried like any compute task.
- ``validate`` checks the three rules, stores the report in the metadata store and queues
  one email per recipient on a violation (``pending`` in the ``notifications`` ledger).
- ``send_emails`` sends every validation email not yet sent and fails while one is not,
  so Airflow retries it (an SMTP server that is down delays the email, never loses it).
- ``fail_on_violation`` fails the run when the report has a violation: a red run in the UI.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, dag, get_current_context, task

DAG_ID = "udf_validate_daily"
SCHEDULE = "30 3 * * *"  # after the daily batch and the day's last stream rows


def validation_day(params: dict[str, Any], interval_end: datetime | None) -> date:
    """The ``date`` param, else the last whole UTC day before the run's interval ends."""
    if params.get("date"):
        return date.fromisoformat(str(params["date"]))
    end = interval_end or datetime.now(UTC)
    return (end.astimezone(UTC) - timedelta(days=1)).date()


def build_validation_dag() -> DAG:
    @dag(
        dag_id=DAG_ID,
        description="Daily streaming-vs-batch validation of the aggregated metrics",
        schedule=SCHEDULE,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["udf", "streaming", "validation"],
        params={
            "date": Param(
                None,
                type=["null", "string"],
                format="date",
                description="The day to validate (empty: yesterday)",
            ),
        },
        default_args={"owner": "udf", "retries": 2, "retry_delay": timedelta(minutes=2)},
        doc_md=__doc__,
        auto_register=False,
    )
    def validate_daily() -> None:
        @task(task_id="recompute_batch", execution_timeout=timedelta(hours=2))
        def recompute() -> str:
            context = get_current_context()
            day = validation_day(context["params"], context.get("data_interval_end"))
            recompute_batch(day)
            return day.isoformat()

        @task(task_id="validate", multiple_outputs=False)
        def check(day: str) -> dict[str, Any]:
            return validate_day(date.fromisoformat(day))

        @task(
            task_id="send_emails",
            multiple_outputs=False,
            retries=5,
            retry_delay=timedelta(minutes=5),
        )
        def emails(summary: dict[str, Any]) -> dict[str, Any]:
            return send_emails(summary)

        @task(task_id="fail_on_violation", retries=0)
        def verdict(summary: dict[str, Any]) -> None:
            fail_on_violation(summary)

        summary = check(recompute())  # type: ignore[arg-type]  # an XComArg at parse time
        emails(summary) >> verdict(summary)  # type: ignore[arg-type]

    return validate_daily()


# -- the tasks' work (heavy imports inside) ------------------------------------------------


def recompute_batch(day: date) -> None:
    from streaming.validation.run import recompute_batch as run
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve().ensure()
    run(home, day, load_settings(home))


def validate_day(day: date) -> dict[str, Any]:
    """Check ``day`` against the stored batch rows; a summary for XCom."""
    from streaming.validation.report import summary
    from streaming.validation.run import run_validation
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve().ensure()
    outcome = run_validation(home, day, load_settings(home), recompute=False, deliver=False)
    report = outcome.report
    return {"day": report.day, "report_id": outcome.report_id, "passed": report.passed,
            "violations": report.violation_count, "max_difference": report.max_difference,
            "summary": summary(report)}  # fmt: skip


def send_emails(summary: dict[str, Any]) -> dict[str, Any]:
    from metadata.repository import MetadataStore
    from streaming.validation.run import deliver_emails
    from udf.errors import UdfError
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve().ensure()
    with MetadataStore.for_home(home) as store:
        sent, failed = deliver_emails(store, load_settings(home))
    if failed:
        raise UdfError(f"validation emails {failed} not delivered yet (retried; recorded in "
                       "udf status --notifications)")  # fmt: skip
    return {**summary, "emails_sent": sent}


def fail_on_violation(summary: dict[str, Any]) -> None:
    from udf.errors import UdfError

    if not summary["passed"]:
        raise UdfError(summary["summary"])
