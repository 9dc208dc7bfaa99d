"""The UDF Airflow plugin: the UI views, a read-only status API, links to the tool DAGs' forms.

Airflow 3 serves plugin FastAPI apps from its API server (``fastapi_apps``) and shows
``external_views`` in the UI's navigation. This plugin adds, under ``/udf``:

- ``GET /udf/status``: every metric-day's lifecycle from the metadata store, the JSON of
  ``udf status --format json`` (filters: ``metric_type``, ``state``, ``experiment``,
  ``ds_from``, ``ds_to``, ``limit``), with counts by state;
- ``GET /udf/on-demand``: how to trigger the on-demand and range-backfill DAGs (form
  fields, REST calls, ``udf backfill``), with the pipelines that are deployed;

- ``GET /udf/ui/tracking``, ``/udf/ui/experiments[/{name}]``, ``/udf/ui/realtime``: the
  HTML views (:mod:`udf.web.views`), embedded in Airflow's own navigation as external views
  with a ``url_route`` (Airflow shows them in an iframe at ``/plugin/<url_route>``);
- ``GET /udf/static/...``: their script, style sheet and chart library (uPlot, shipped in
  the package: no CDN);

and navigation links (Airflow 3.3 shows a plugin's categorised links under its "Plugins"
menu: Plugins → UDF): the three views, the two tool DAGs, whose Trigger button opens their
params form, and the status JSON.

Airflow does **not** put plugin endpoints behind its authentication: this app checks the
caller itself with Airflow's own JWT check (a ``Bearer`` token from ``POST /auth/token``, or
the UI's session cookie), so only users logged in to Airflow can read it, its OpenAPI
schema, Swagger page (``/udf/openapi.json``, ``/udf/docs``), views and static files
included. It is read-only; the views' buttons trigger through Airflow's own REST API, from
the browser with the user's session, so Airflow's permissions apply.

The store is the one the API server's environment names (the ``udf_metadata``
connection, ``$UDF_METADATA_URL``, or an existing home's SQLite under ``$UDF_HOME``). With
none, it answers 503 saying what to set: a server never creates a platform home of its own.
The results views read the results store of ``$UDF_HOME``'s settings (``UDF_RESULTS_*``
override them), as ``udf results show`` does.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Annotated, Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from udf.vocabulary import RUN_STATES
from udf.web.views import ON_DEMAND_DAG, PAGES, RANGE_BACKFILL_DAG, build_router


async def airflow_user(request: Request) -> Any:
    """The logged-in Airflow user (JWT bearer or UI cookie), else 401/403 from Airflow's check."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


def create_app() -> FastAPI:
    app = FastAPI(
        title="UDF",
        description="Metric lifecycle of the Unified Dynamic Framework (read-only).",
        dependencies=[Depends(airflow_user)],
        # FastAPI's own schema and docs routes skip the app's dependencies: served below,
        # behind the login like everything else.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    app.include_router(build_router(_store, _results, _stream_jobs))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title="UDF API")

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


NOT_CONFIGURED = (
    "the UDF plugin has no metadata store to read: set the Airflow connection udf_metadata "
    "or UDF_METADATA_URL (or UDF_HOME, for a home's SQLite store) in the API server's "
    "environment, as on the workers (docs/airflow.md, Deploying)"
)


def _store() -> Any:
    """The configured metadata store; 503 when there is none (never a new, empty one)."""
    from metadata.repository import MetadataStore
    from udf.framework.metadata_hook import UdfMetadataHook
    from udf.home import Home

    url = UdfMetadataHook().configured_url()
    if url:
        return MetadataStore(url)
    if not os.environ.get("UDF_HOME"):
        raise HTTPException(503, NOT_CONFIGURED)
    home = Home.resolve()
    if not home.metadata_db.is_file():
        raise HTTPException(
            503,
            f"UDF_HOME={home.root} holds no metadata store ({home.metadata_db.name}): point "
            "it at the platform's home, or set UDF_METADATA_URL or the connection udf_metadata",
        )
    return MetadataStore.for_home(home)


def _stream_jobs() -> list[dict[str, Any]]:
    """The streaming jobs of ``$UDF_HOME``'s session cluster (none without a home)."""
    from udf.home import Home
    from udf.web.health import stream_jobs

    if not os.environ.get("UDF_HOME"):
        return []
    return stream_jobs(Home.resolve())


def _results() -> Any:
    """The results store of ``$UDF_HOME``'s settings; 503 without an existing home."""
    from results.stores import open_store
    from udf.home import Home
    from udf.settings import load_settings

    if not os.environ.get("UDF_HOME"):
        raise HTTPException(503, "the UDF plugin has no platform home: set UDF_HOME (and "
                            "UDF_RESULTS_* if the results live elsewhere) in the API server's "
                            "environment (docs/airflow.md, Deploying)")  # fmt: skip
    home = Home.resolve()
    if not home.root.is_dir():
        raise HTTPException(503, f"UDF_HOME={home.root} does not exist")
    return open_store(home, load_settings(home))


class UdfPlugin(AirflowPlugin):
    """Registers the status API under ``/udf`` and the "UDF" navigation links."""

    name = "udf"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/udf", "name": "UDF status"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        *(
            {
                "name": label,
                "href": f"/udf/ui/{slug}",
                "url_route": f"udf-{slug}",
                "category": "UDF",
                "destination": "nav",
            }
            for slug, label in PAGES
        ),
        {"name": "On-demand metrics", "href": f"/dags/{ON_DEMAND_DAG}", "category": "UDF"},
        {"name": "Range backfill", "href": f"/dags/{RANGE_BACKFILL_DAG}", "category": "UDF"},
        {"name": "Metric lifecycle (JSON)", "href": "/udf/status", "category": "UDF"},
    ]
