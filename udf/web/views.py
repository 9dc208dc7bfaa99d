"""The plugin's HTML views: metric tracking, experiment results, real-time health.

Server-rendered pages (Jinja2) with a little JavaScript: the charts (uPlot, shipped in
``static/``) and the trigger buttons, which call Airflow's own REST API from the browser
with the user's session, so a user can only trigger what Airflow lets them. The router
takes the stores as callables, so the plugin decides where they come from and the tests
can hand in their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from udf.framework.builder import ON_DEMAND_DAG_ID as ON_DEMAND_DAG
from udf.framework.builder import RANGE_BACKFILL_DAG_ID as RANGE_BACKFILL_DAG
from udf.vocabulary import METRIC_TYPES, RUN_STATES

HERE = Path(__file__).parent
STATIC = HERE / "static"
PAGES = (("tracking", "Metric tracking"), ("experiments", "Experiment results"),
         ("realtime", "Real-time health"))  # fmt: skip
NO_JOBS = (
    "No streaming job is deployed to the session cluster: `udf flink up`, then the "
    "udf_stream_supervisor DAG or `udf stream run --cluster --detach` (docs/streaming.md, "
    "Operations)"
)
NO_REPORTS = (
    "No validation report yet: `udf validate --date D` or the udf_validate_daily DAG writes "
    "one a day (docs/streaming.md, Validation)"
)
VALIDATION_REPORTS_SHOWN = 30


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = fmt_number
    return env


def fmt_number(value: float | None, digits: int = 4) -> str:
    """A number as the views print it (``-`` for none): 4 significant digits."""
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def build_router(
    metadata: Callable[[], Any],
    results: Callable[[], Any],
    stream_jobs: Callable[[], list[dict[str, Any]]] = list,
) -> APIRouter:
    """The views; ``metadata()`` and ``results()`` open the stores (context managers),
    ``stream_jobs()`` reports the streaming jobs' health (:mod:`udf.web.health`)."""
    router = APIRouter()
    env = _environment()

    def page(request: Request, template: str, **context: Any) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        html = env.get_template(template).render(root=root, pages=PAGES, **context)
        return HTMLResponse(html)

    @router.get("/static/{name:path}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if not path.is_file() or STATIC.resolve() not in path.parents:
            raise HTTPException(404, "no such file")
        return FileResponse(path)

    @router.get("/ui/tracking", response_class=HTMLResponse, include_in_schema=False)
    def tracking(
        request: Request,
        metric_type: str = "",
        state: Annotated[list[str] | None, Query()] = None,
        experiment: str | None = None,
        metric: str = "",
        owner: str = "",
        ds_from: date | None = None,
        ds_to: date | None = None,
        late: bool = False,
    ) -> HTMLResponse:
        from udf.web.figures import tracking_rows

        experiment = None if experiment == "*" else experiment
        with metadata() as store:
            runs = store.runs(
                metric=metric or None, states=state or None, ds_from=ds_from, ds_to=ds_to,
                scope=experiment,
            )  # fmt: skip
            metrics = store.metrics(include_disabled=True)
            experiments = [e.name for e in store.experiments()]
        rows = tracking_rows(runs, metrics, datetime.now(UTC))
        rows = [
            r for r in rows
            if (not metric_type or r["metric_type"] == metric_type)
            and (not owner or owner in r["owners"])
            and (not late or r["late_hours"] > 0)
        ]  # fmt: skip
        rows.sort(key=lambda r: (r["ds"], r["metric_type"], r["metric"], r["experiment"]))
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        filters = {"metric_type": metric_type, "state": state or [], "experiment": experiment,
                   "metric": metric, "owner": owner, "ds_from": ds_from or "",
                   "ds_to": ds_to or "", "late": late}  # fmt: skip
        return page(
            request, "tracking.html", title="Metric tracking", rows=rows, counts=counts,
            filters=filters, states=RUN_STATES, metric_types=METRIC_TYPES,
            experiments=experiments, owners=sorted({o for m in metrics for o in m.owners}),
            dags={"on_demand": ON_DEMAND_DAG, "range_backfill": RANGE_BACKFILL_DAG},
        )  # fmt: skip

    @router.get("/ui/experiments", response_class=HTMLResponse, include_in_schema=False)
    def experiments(request: Request) -> HTMLResponse:
        with metadata() as store:
            found = store.experiments()
        return page(request, "experiments.html", title="Experiment results", experiments=found)

    @router.get("/ui/experiments/{name}", response_class=HTMLResponse, include_in_schema=False)
    def experiment(request: Request, name: str, metric: str = "") -> HTMLResponse:
        from udf.web.figures import group_series, latest_comparisons, srm_checks

        with metadata() as store:
            info = store.experiment(name)
        if info is None:
            raise HTTPException(404, f"no experiment {name!r}")
        with results() as store:
            rows = store.read(experiments=[name])
        analysis = info.analysis or {}
        alpha = float(analysis.get("alpha", 0.05))
        metrics = sorted({r.metric for r in rows})
        chosen = metric if metric in metrics else (metrics[0] if metrics else "")
        comparisons = latest_comparisons(rows, segments=False)
        return page(
            request, "experiment.html", title=f"Experiment {name}", experiment=info,
            metrics=metrics, metric=chosen, alpha=alpha,
            series=json.dumps(group_series(rows, chosen, alpha)).replace("<", "\\u003c"),
            comparisons=comparisons, segments=latest_comparisons(rows, segments=True),
            sequential=any(r.seq_decision for r in comparisons),
            bayesian=any(r.prob_beat_control is not None for r in comparisons),
            srm=srm_checks(rows, info),
        )  # fmt: skip

    @router.get("/ui/realtime", response_class=HTMLResponse, include_in_schema=False)
    def realtime(request: Request) -> HTMLResponse:
        with results() as store:
            rows = store.read(source="stream")
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            seen = latest.setdefault(row.experiment, {"date": "", "computed_at": 0, "rows": 0})
            seen["date"] = max(seen["date"], row.date)
            seen["computed_at"] = max(seen["computed_at"], row.computed_at)
            seen["rows"] += 1
        for seen in latest.values():
            seen["computed"] = datetime.fromtimestamp(seen["computed_at"] / 1000, UTC).strftime(
                "%Y-%m-%d %H:%M:%S"
            )
        from udf.web.health import assignment_states

        with metadata() as store:
            reports = store.validation_reports(limit=VALIDATION_REPORTS_SHOWN)
            assignment = assignment_states(store.alert_states())
        return page(request, "realtime.html", title="Real-time health", latest=latest,
                    jobs=stream_jobs(), reports=reports, no_jobs=NO_JOBS,
                    no_reports=NO_REPORTS, assignment=assignment)  # fmt: skip

    return router
