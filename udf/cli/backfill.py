"""``udf backfill``: recompute a metric type over a date range, through Airflow or in-process.

With ``--server`` the request goes to Airflow's REST API (a backfill of the type's DAG,
``udf_<type>``), which runs the normal pipeline for each date. Without a server the same
plan and leased batches run here, one after another, with a progress bar: the same
lifecycle, the same leases, so a scheduler running at the same time never computes the
same metric-day twice.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from udf.cli import pass_home
from udf.cli.output import console, emit, format_option
from udf.errors import InputError
from udf.home import Home
from udf.times import parse_day
from udf.vocabulary import METRIC_TYPES


@click.command(name="backfill")
@click.option("--metric-type", required=True, type=click.Choice(METRIC_TYPES))
@click.option("--from", "ds_from", required=True, metavar="YYYY-MM-DD", help="First ds.")
@click.option("--to", "ds_to", required=True, metavar="YYYY-MM-DD", help="Last ds (inclusive).")
@click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable).")
@click.option("--experiment", default="", help="Only this experiment (an on-demand run).")
@click.option(
    "--missing-only",
    is_flag=True,
    help="Compute only metric-days not done yet (default: recompute done ones too).",
)
@click.option(
    "--server",
    default=None,
    envvar="UDF_AIRFLOW_URL",
    help="Airflow API server URL (default $UDF_AIRFLOW_URL); none: run in-process.",
)
@click.option("--user", default=None, envvar="UDF_AIRFLOW_USER", help="Airflow user.")
@click.option(
    "--password",
    default=None,
    envvar="UDF_AIRFLOW_PASSWORD",
    help="Airflow password (default $UDF_AIRFLOW_PASSWORD).",
)
@click.option(
    "--unpause",
    is_flag=True,
    help="With --server: unpause the pipeline's DAG if it is paused (a paused DAG's runs never start).",
)
@click.option(
    "--max-active-runs",
    type=click.IntRange(min=1),
    default=None,
    help="Concurrent DAG runs of the backfill (default: the pipeline's).",
)
@click.option(
    "--pipelines",
    type=click.Path(exists=True),
    default=None,
    help="Pipeline configs (default $UDF_PIPELINES_DIR, else dags/configs/pipelines).",
)
@format_option
@pass_home
def command(
    home: Home,
    metric_type: str,
    ds_from: str,
    ds_to: str,
    metrics: tuple[str, ...],
    experiment: str,
    missing_only: bool,
    server: str | None,
    user: str | None,
    password: str | None,
    unpause: bool,
    max_active_runs: int | None,
    pipelines: str | None,
    fmt: str,
) -> None:
    """Recompute METRIC_TYPE metrics for every ds from --from to --to.

    The range must end by today (UTC) and cover at most a year. In-process, --experiment
    must name an experiment the metadata store knows (through a server, the DAG's runs wait
    for it, as an on-demand run triggered before its ramps were imported does).
    """
    from udf.framework.backfill import check_range
    from udf.framework.plan import RunConf, parse_run_conf
    from udf.framework.spec import pipeline_for

    first, last = parse_day(ds_from, "--from"), parse_day(ds_to, "--to")
    check_range(first, last)
    spec = pipeline_for(metric_type, pipelines)
    requested_at = datetime.now(UTC)
    # The range travels with the runs: none plans a day outside it (with a sub-daily
    # schedule the first runs of --from would otherwise plan the day before).
    conf = RunConf(experiment, tuple(metrics) or None, not missing_only, requested_at, first, last)
    parse_run_conf(conf.as_conf())  # the DAG validates the same way: fail here, not there
    if server:
        _through_airflow(
            server, user, password, spec, first, last, conf, max_active_runs, unpause, fmt
        )
    elif unpause:
        raise InputError("--unpause needs --server (in-process backfills have no DAG to pause)")
    elif max_active_runs is not None:
        raise InputError(
            "--max-active-runs needs --server (in-process backfills run one batch at a time)"
        )
    else:
        _in_process(home, spec, first, last, conf, fmt)


def _through_airflow(
    server: str,
    user: str | None,
    password: str | None,
    spec: Any,
    first: date,
    last: date,
    conf: Any,
    max_active_runs: int | None,
    unpause: bool,
    fmt: str,
) -> None:
    from udf.framework.backfill import BackfillRequest, ensure_unpaused, get_token, request_backfill

    request = BackfillRequest(
        dag_id=spec.dag_id,
        from_date=first,
        to_date=last,
        dag_run_conf=conf.as_conf(),
        max_active_runs=max_active_runs or spec.dag_creation_args.max_active_runs,
    )
    token = get_token(server, user, password)
    unpaused = ensure_unpaused(server, request.dag_id, token, unpause=unpause)
    answer = request_backfill(server, request, token=token)
    if fmt == "json":
        emit([{**answer, "unpaused": unpaused}], fmt)
        return
    if unpaused:
        click.echo(f"{request.dag_id} was paused on {server}: unpaused it")
    click.echo(
        f"backfill {answer.get('id')} of {request.dag_id} created on {server}: "
        f"{first} .. {last}, conf {request.dag_run_conf}"
    )


def _in_process(home: Home, spec: Any, first: date, last: date, conf: Any, fmt: str) -> None:
    from metadata.repository import MetadataStore
    from udf.framework.tasks import run_in_process

    days = (last - first).days + 1
    show = (sys.stderr.isatty() and fmt != "json") or os.environ.get("UDF_PROGRESS") == "1"
    with (
        _known_scope(MetadataStore.for_home(home.ensure()), conf.scope) as store,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(err=True),
            disable=not show,
        ) as bar,
    ):
        task = bar.add_task(f"{spec.dag_id} {first}", total=days)

        def progress(ds: date, i: int, n: int, summary: dict[str, Any]) -> None:
            bar.update(task, description=f"{spec.dag_id} {ds} batch {i}/{n}")
            if i == n:
                bar.advance(task)

        summaries = run_in_process(
            home,
            spec,
            first,
            last,
            conf.scope,
            list(conf.metrics) if conf.metrics else None,
            force=conf.force,
            requested_at=conf.requested_at,
            store=store,
            progress=progress,
        )
        runs = [
            r
            for r in store.runs(ds_from=first, ds_to=last, scope=conf.scope)
            if r.metric_type == spec.metric_type
            and (conf.metrics is None or r.metric in conf.metrics)
        ]
    errors = [s for s in summaries if s.get("error")]
    failed = sum(len(s.get("failed") or {}) for s in summaries)
    if fmt == "json":
        emit([{"batches": summaries, "runs": [_run_row(r) for r in runs]}], fmt)
    else:
        emit(
            [_batch_row(s) for s in summaries],
            fmt,
            title=f"{len(summaries)} batch(es)",
            columns=[
                "ds",
                "computed",
                "failed",
                "held elsewhere",
                "already done",
                "seconds",
                "error",
            ],
        )
        emit(
            [_run_row(r) for r in runs],
            fmt,
            title="metric-days after the backfill",
            columns=["metric", "ds", "state", "reason"],
        )
    if errors:
        raise InputError(f"{len(errors)} batch(es) failed; see `udf status --state failed`")
    if failed:
        raise InputError(
            f"{failed} metric-day(s) failed (the others were computed); "
            "see `udf status --state failed`"
        )


def _known_scope(store: Any, scope: str) -> Any:
    """``store``, once ``scope`` (an experiment, or "" for all) is known to it."""
    if scope and store.experiment(scope) is None:
        store.close()
        raise InputError(f"no experiment named {scope!r}; import its ramps first")
    return store


def _batch_row(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "ds": s.get("ds"),
        "computed": ", ".join(s.get("computed", [])),
        "failed": ", ".join(s.get("failed") or {}),
        "held elsewhere": ", ".join(s.get("held_elsewhere", [])),
        "already done": ", ".join(s.get("already_done", [])),
        "seconds": s.get("seconds"),
        "error": f"{', '.join(s.get('metrics', []))}: {s['error']}" if s.get("error") else "",
    }


def _run_row(r: Any) -> dict[str, Any]:
    return {"metric": r.metric, "ds": r.ds.isoformat(), "state": r.state, "reason": r.reason}
