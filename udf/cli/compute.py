"""``udf compute``: run the batch computation directly, no scheduler needed (the contract §5).

Each date's slice is computed over one shared scan and replaces the previous rows of that
slice in the results store, so running it twice gives the same results, never twice as many.
"""

from __future__ import annotations

from datetime import date, timedelta

import click

from udf.cli import pass_home
from udf.cli.output import emit, format_option
from udf.errors import InputError
from udf.home import Home
from udf.vocabulary import METRIC_TYPES


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} must be a date YYYY-MM-DD, got {value!r}") from None


@click.command(name="compute")
@click.option("--metric-type", "metric_type", required=True, type=click.Choice(METRIC_TYPES))
@click.option("--through", required=True, help="The (last) date to compute, YYYY-MM-DD.")
@click.option("--from", "date_from", help="Also compute every date from this one (YYYY-MM-DD).")
@click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable).")
@click.option("--experiment", "experiments", multiple=True, help="Only this experiment.")
@format_option
@pass_home
def command(
    home: Home,
    metric_type: str,
    through: str,
    date_from: str | None,
    metrics: tuple[str, ...],
    experiments: tuple[str, ...],
    fmt: str,
) -> None:
    """Compute METRIC-TYPE metrics for a date (or a range) and write the results.

    aggregated: cumulative through the date; calendar_day: the date alone; days_in: day k
    since exposure, for users whose day k ended by the date; custom: your SQL over the
    aggregated slice.
    """
    from rich.progress import Progress

    from metric_types.compute import compute

    last = _date(through, "--through")
    first = _date(date_from, "--from") if date_from else last
    if first > last:
        raise InputError(f"--from {first} is after --through {last}")
    dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    reports = []
    with Progress(transient=True, disable=fmt == "json") as progress:
        task = progress.add_task(f"computing {metric_type}", total=len(dates))
        for day in dates:
            reports.append(
                compute(
                    home.ensure(),
                    metric_type,
                    [day],
                    metrics=metrics or None,
                    experiments=experiments or None,
                )
            )
            progress.advance(task)
    rows = [
        {"metric_type": r.metric_type, "date": r.dates[0].isoformat(), "metrics": len(r.metrics),
         "rows": r.rows, "seconds": round(r.seconds, 1)}
        for r in reports
    ]  # fmt: skip
    emit(rows, fmt, title=f"udf compute {metric_type}")
