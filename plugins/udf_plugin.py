"""The UDF Airflow plugin: a read-only status API and links to the on-demand and backfill forms.

Airflow 3 serves plugin FastAPI apps from its API server (``fastapi_apps``) and shows
``external_views`` in the UI's navigation. This plugin adds, under ``/udf``:

- ``GET /udf/status``: every metric-day's lifecycle from the metadata store, the JSON of
  ``udf status --format json`` (filters: ``metric_type``, ``state``, ``experiment``,
  ``ds_from``, ``ds_to``, ``limit``), with counts by state;
- ``GET /udf/on-demand``: how to trigger the on-demand and range-backfill DAGs (form
  fields, REST calls, ``udf backfill``), with the pipelines that are deployed;

and three navigation links ("UDF" menu): the two tool DAGs, whose Trigger button opens
their params form, and the status JSON.

Airflow does **not** put plugin endpoints behind its authentication: this app checks the
caller itself with Airflow's own JWT check (a ``Bearer`` token from ``POST /auth/token``, or
the UI's session cookie), so only users logged in to Airflow can read it. It is
read-only; triggering goes through Airflow's own API and its permissions.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request

from udf.vocabulary import RUN_STATES

ON_DEMAND_DAG = "udf_on_demand"
RANGE_BACKFILL_DAG = "udf_range_backfill"


async def airflow_user(request: Request) -> Any:
    """The logged-in Airflow user (JWT bearer or UI cookie), else 401/403 from Airflow's check."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


def create_app() -> FastAPI:
    app = FastAPI(
        title="UDF",
        description="Metric lifecycle of the Unified Dynamic Framework (read-only).",
        dependencies=[Depends(airflow_user)],
    )

    @app.get("/status")
    def status(
        metric_type: str | None = None,
        state: Annotated[list[str] | None, Query()] = None,
        experiment: Annotated[str | None, Query(description="'' for the daily runs")] = None,
        ds_from: date | None = None,
        ds_to: date | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> dict[str, Any]:
        """Metric-days and their lifecycle state, oldest day first."""
        unknown = sorted(set(state or ()) - set(RUN_STATES))
        if unknown:
            raise HTTPException(422, f"unknown state(s) {unknown}; expected {list(RUN_STATES)}")
        from udf.cli.status import run_json

        with _store() as store:
            runs = store.runs(states=state or None, ds_from=ds_from, ds_to=ds_to, scope=experiment)
        if metric_type:
            runs = [r for r in runs if r.metric_type == metric_type]
        runs.sort(key=lambda r: (r.ds, r.metric_type, r.metric, r.scope))
        counts: dict[str, int] = {}
        for run in runs:
            counts[run.state] = counts.get(run.state, 0) + 1
        return {
            "count": len(runs),
            "states": counts,
            "truncated": len(runs) > limit,
            "runs": [run_json(r) for r in runs[:limit]],
        }

    @app.get("/on-demand")
    def on_demand() -> dict[str, Any]:
        """How to compute metrics now: the tool DAGs' forms, their REST calls, the CLI."""
        from udf.framework.spec import load_pipelines

        pipelines = load_pipelines()
        types = sorted(s.metric_type for s in pipelines.specs.values())
        return {
            "metric_types": types,
            "pipelines": {t: f"udf_{t}" for t in types},
            "on_demand": {
                "dag_id": ON_DEMAND_DAG,
                "ui": f"/dags/{ON_DEMAND_DAG} (Trigger: the params form)",
                "params": {
                    "experiment": "required",
                    "metric_type": types,
                    "metrics": "list, empty for all of the type",
                    "from_date": "YYYY-MM-DD, empty: the experiment's first ramp",
                    "to_date": "YYYY-MM-DD, empty: the end of its last period (at most yesterday)",
                    "force": "recompute days already done (default true)",
                },
                "rest": {
                    "method": "POST",
                    "path": f"/api/v2/dags/{ON_DEMAND_DAG}/dagRuns",
                    "body": {
                        "logical_date": None,
                        "conf": {"experiment": "exp_123", "metric_type": types[0] if types else ""},
                    },
                },
            },
            "range_backfill": {
                "dag_id": RANGE_BACKFILL_DAG,
                "ui": f"/dags/{RANGE_BACKFILL_DAG} (Trigger: the params form)",
                "params": "as on_demand; experiment optional (empty: every experiment)",
            },
            "backfill_of_a_pipeline": {
                "cli": "udf backfill --metric-type T --from D --to D [--server URL]",
                "rest": {"method": "POST", "path": "/api/v2/backfills"},
            },
            "config_issues": [str(i) for i in pipelines.issues],
        }

    return app


def _store() -> Any:
    from udf.framework.airflow_tasks import open_store
    from udf.home import Home

    return open_store(Home.resolve())


class UdfPlugin(AirflowPlugin):
    """Registers the status API under ``/udf`` and the "UDF" navigation links."""

    name = "udf"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/udf", "name": "UDF status"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {"name": "On-demand metrics", "href": f"/dags/{ON_DEMAND_DAG}", "category": "UDF"},
        {"name": "Range backfill", "href": f"/dags/{RANGE_BACKFILL_DAG}", "category": "UDF"},
        {"name": "Metric lifecycle (JSON)", "href": "/udf/status", "category": "UDF"},
    ]
