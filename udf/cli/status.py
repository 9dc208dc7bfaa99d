"""``udf status``: every metric-day's lifecycle, with timestamps and the reason for its state.

The framework records each metric-day (and scope) as it moves through waiting_on_source,
queued, in_progress, done, failed, skipped and backfill_queued; this shows where each one is
and why, and with ``--history`` every transition. ``--format json`` is for scripts.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import click

from udf.cli import pass_home
from udf.cli.output import emit, format_option
from udf.errors import InputError
from udf.home import Home
from udf.vocabulary import METRIC_TYPES, RUN_STATES

if TYPE_CHECKING:
    from metadata.records import RunInfo


@click.command(name="status")
@click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable).")
@click.option("--metric-type", type=click.Choice(METRIC_TYPES), default=None)
@click.option("--date", "day", metavar="YYYY-MM-DD", default=None, help="One metric-day (ds).")
@click.option("--from", "ds_from", metavar="YYYY-MM-DD", default=None, help="First ds (inclusive).")
@click.option("--to", "ds_to", metavar="YYYY-MM-DD", default=None, help="Last ds (inclusive).")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(RUN_STATES),
    help="Only runs in this state (repeatable).",
)
@click.option(
    "--experiment",
    "scope",
    default=None,
    help="Only on-demand runs of this experiment ('' for the daily runs).",
)
@click.option("--history", is_flag=True, help="Every state change, not only the current state.")
@click.option(
    "--notifications",
    is_flag=True,
    help="The owner digests instead: recipient, state (pending/sent/failed), attempts, error.",
)
@click.option(
    "--alerts",
    is_flag=True,
    help="The real-time alerts instead: each watched comparison's state (with --history, "
    "every change) and the alert messages' delivery. --experiment filters them.",
)
@click.option(
    "--health",
    is_flag=True,
    help="The experiments' health checks instead, from the batch results: SRM, users in two "
    "groups, groups without data, per period and date. --experiment and the dates filter them.",
)
@click.option(
    "--validation",
    is_flag=True,
    help="The streaming-vs-batch validation reports instead (udf validate), newest first; "
    "with --date, that day's, each with its violations.",
)
@format_option
@pass_home
def command(
    home: Home,
    metrics: tuple[str, ...],
    metric_type: str | None,
    day: str | None,
    ds_from: str | None,
    ds_to: str | None,
    states: tuple[str, ...],
    scope: str | None,
    history: bool,
    notifications: bool,
    alerts: bool,
    health: bool,
    validation: bool,
    fmt: str,
) -> None:
    """Show each metric-day's lifecycle state, when it changed and why."""
    from metadata.repository import MetadataStore

    given = {"--metric": metrics, "--metric-type": metric_type, "--date": day, "--from": ds_from,
             "--to": ds_to, "--state": states, "--experiment": scope, "--history": history}  # fmt: skip
    _check_view(
        {"--health": health, "--validation": validation, "--alerts": alerts,
         "--notifications": notifications},
        {option for option, value in given.items() if value not in (None, (), False)},
    )  # fmt: skip
    if day and (ds_from or ds_to):
        raise InputError("give --date, or --from/--to, not both")

    if health:
        first = _date(day or ds_from, "--date" if day else "--from")
        last = _date(day or ds_to, "--date" if day else "--to")
        show_health(home, scope or None, metric_type, first, last, fmt)
        return

    if validation:
        from udf.cli.validation_status import show_validation

        show_validation(home, _date(day, "--date") if day else None, fmt)
        return

    if alerts:
        from udf.cli.alerts_status import show_alerts

        show_alerts(home, scope or None, history, fmt)
        return

    if notifications:
        with MetadataStore.for_home(home.ensure()) as store:
            sent = store.notifications()
        rows = [
            {
                "id": n.id,
                "recipient": n.recipient,
                "subject": n.subject,
                "state": n.state,
                "attempts": n.attempts,
                "created": _time(n.created_at),
                "sent": _time(n.sent_at),
                "error": n.last_error or "",
                "runs": len(n.run_ids),
            }
            for n in sent
        ]
        emit(
            rows,
            fmt,
            title=f"{len(rows)} notification(s)",
            columns=[
                "id",
                "recipient",
                "subject",
                "state",
                "attempts",
                "created",
                "sent",
                "error",
                "runs",
            ],
        )
        return

    first, last = (
        (_date(day, "--date"),) * 2
        if day
        else (
            _date(ds_from, "--from"),
            _date(ds_to, "--to"),
        )
    )
    if first and last and last < first:
        raise InputError(f"--to {last} is before --from {first}")
    with MetadataStore.for_home(home.ensure()) as store:
        found: list[RunInfo] = []
        for metric in metrics or (None,):
            found.extend(
                store.runs(
                    metric=metric,
                    states=states or None,
                    ds_from=first,
                    ds_to=last,
                    scope=scope,
                    with_events=history,
                )
            )
    if metric_type:
        found = [r for r in found if r.metric_type == metric_type]
    found.sort(key=lambda r: (r.ds, r.metric_type, r.metric, r.scope))
    if fmt == "json":
        emit([run_json(r, history) for r in found], fmt)
        return
    if history:
        rows = [
            {
                "metric": r.metric,
                "ds": r.ds,
                "experiment": r.scope or "all",
                "at": _time(e.at),
                "from": e.from_state or "",
                "to": e.to_state,
                "reason": e.reason or "",
            }
            for r in found
            for e in r.events
        ]
        emit(rows, fmt, title=f"history of {len(found)} metric-day(s)")
        return
    rows = [
        {
            "metric": r.metric,
            "type": r.metric_type,
            "ds": r.ds,
            "experiment": r.scope or "all",
            "state": r.state,
            "attempt": r.attempt,
            "since": _time(r.updated_at),
            "duration s": r.duration_seconds,
            "reason": r.reason or "",
            "dag run": r.dag_run_id or "",
        }
        for r in found
    ]
    counts: dict[str, int] = {}
    for r in found:
        counts[r.state] = counts.get(r.state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    emit(
        rows,
        fmt,
        title=f"{len(found)} metric-day(s): {summary}",
        columns=[
            "metric",
            "type",
            "ds",
            "experiment",
            "state",
            "attempt",
            "since",
            "duration s",
            "reason",
            "dag run",
        ],
    )


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected YYYY-MM-DD") from None


def _time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_json(run: RunInfo, history: bool = False) -> dict[str, Any]:
    """A run as ``udf status --format json`` prints it (the plugin's API serves the same)."""
    out: dict[str, Any] = {
        "metric": run.metric,
        "metric_type": run.metric_type,
        "ds": run.ds.isoformat(),
        "scope": run.scope,
        "state": run.state,
        "reason": run.reason,
        "attempt": run.attempt,
        "dag_run_id": run.dag_run_id,
        "created_at": _time(run.created_at),
        "updated_at": _time(run.updated_at),
        "started_at": _time(run.started_at) or None,
        "finished_at": _time(run.finished_at) or None,
        "duration_seconds": run.duration_seconds,
    }
    if history:
        out["events"] = [
            {"at": _time(e.at), "from": e.from_state, "to": e.to_state, "reason": e.reason}
            for e in run.events
        ]
    return out


HEALTH_COLUMNS = ("date", "metric_type", "experiment", "period_start", "day_in", "exposed",
                  "srm_p_value", "multiple_groups", "health")  # fmt: skip


def health_cells(rows: list[Any]) -> list[dict[str, Any]]:
    """One line per (date, metric type, experiment, period, day_in) of the results: the
    health checks written on its rows (results.health), users per group, users in two groups."""
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        if r.segment != "":
            continue
        key = (r.date, r.metric_type, r.experiment, r.period_start, r.day_in)
        cell = cells.setdefault(key, {
            "date": r.date, "metric_type": r.metric_type, "experiment": r.experiment,
            "period_start": r.period_start, "day_in": r.day_in, "groups": {},
            "srm_p_value": r.srm_p_value, "multiple_groups": 0, "health": r.health,
        })  # fmt: skip
        if r.group not in cell["groups"]:
            cell["groups"][r.group] = r.exposed
            cell["multiple_groups"] += r.multiple_groups
    out = []
    for cell in cells.values():
        groups = cell.pop("groups")
        cell["exposed"] = ", ".join(f"{g} {n}" for g, n in sorted(groups.items()))
        out.append(cell)
    return out


def show_health(
    home: Home, experiment: str | None, metric_type: str | None, first: date | None,
    last: date | None, fmt: str,
) -> None:  # fmt: skip
    from results.stores import open_store
    from udf.settings import load_settings

    with open_store(home, load_settings(home)) as store:
        rows = store.read(
            source="batch", metric_type=metric_type, date_from=first, date_to=last,
            experiments=[experiment] if experiment else None,
        )  # fmt: skip
    cells = health_cells(rows)
    bad = sum(1 for c in cells if c["health"])
    emit(cells, fmt, title=f"{len(cells)} experiment period(s), {bad} with a failed check",
         columns=HEALTH_COLUMNS)  # fmt: skip


# The options each view other than the lifecycle reads: any other filter given with it is
# refused rather than ignored.
VIEW_OPTIONS = {
    "--health": {"--experiment", "--metric-type", "--date", "--from", "--to"},
    "--validation": {"--date"},
    "--alerts": {"--experiment", "--history"},
    "--notifications": set(),
}


def _check_view(views: dict[str, bool], given: set[str]) -> None:
    chosen = [view for view, on in views.items() if on]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} are different views: give one")
    if chosen and (ignored := sorted(given - VIEW_OPTIONS[chosen[0]])):
        raise InputError(f"{', '.join(ignored)} does not apply to {chosen[0]}")
