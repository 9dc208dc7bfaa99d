"""``udf compute``: run the batch computation directly, no scheduler needed (the contract §5).

Each date's slice is computed over one shared scan and replaces the previous rows of that
slice in the results store, so running it twice gives the same results, never twice as many.
It runs as a batch of the framework (:func:`udf.framework.tasks.compute_now`): every
metric-day is recorded in the lifecycle (``in_progress``, then ``done`` or ``failed`` with
the reason), so ``udf status`` shows it, and leases keep it apart from a scheduler's worker.
A custom metric that fails is recorded ``failed`` alone; the command then exits 1 naming it.
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import product
from typing import Any

import click

from udf.cli import pass_home
from udf.cli.output import console, emit, format_option
from udf.errors import InputError, UdfError
from udf.home import Home
from udf.vocabulary import METRIC_TYPES


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} must be a date YYYY-MM-DD, got {value!r}") from None


@click.command(name="compute")
@click.option(
    "--metric-type",
    "metric_types",
    required=True,
    multiple=True,
    type=click.Choice(METRIC_TYPES),
    help="The type to compute (repeatable: each type in turn, in one Spark session).",
)
@click.option("--through", required=True, help="The (last) date to compute, YYYY-MM-DD.")
@click.option("--from", "date_from", help="Also compute every date from this one (YYYY-MM-DD).")
@click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable).")
@click.option(
    "--experiment",
    "experiments",
    multiple=True,
    help="Only this experiment: an on-demand run of it (repeatable: one run each).",
)
@format_option
@pass_home
def command(
    home: Home,
    metric_types: tuple[str, ...],
    through: str,
    date_from: str | None,
    metrics: tuple[str, ...],
    experiments: tuple[str, ...],
    fmt: str,
) -> None:
    """Compute METRIC-TYPE metrics for a date (or a range) and write the results.

    With several --metric-type, the types are computed one after another in this process,
    so they share its Spark session; --metric then needs a single type.

    aggregated: cumulative through the date; calendar_day: the date alone; days_in: day k
    since exposure, for users whose day k ended by the date; custom: your SQL over the
    aggregated slice.
    """
    from rich.progress import Progress

    from metadata.repository import MetadataStore
    from udf.framework.tasks import compute_now
    from udf.settings import load_settings

    last = _date(through, "--through")
    first = _date(date_from, "--from") if date_from else last
    if first > last:
        raise InputError(f"--from {first} is after --through {last}")
    dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    types = list(dict.fromkeys(metric_types))
    if metrics and len(types) > 1:
        raise InputError(
            f"--metric names metrics of one type: give a single --metric-type, not {len(types)}"
        )
    scopes = list(dict.fromkeys(experiments)) or [""]
    home = home.ensure()
    settings = load_settings(home)
    summaries: list[dict[str, Any]] = []
    with (
        MetadataStore.for_home(home) as store,  # one store for every slice, not one each
        Progress(console=console(err=True), transient=True, disable=fmt == "json") as progress,
    ):
        task = progress.add_task(
            f"computing {', '.join(types)}", total=len(types) * len(dates) * len(scopes)
        )
        for metric_type, day, scope in product(types, dates, scopes):
            summaries.append(
                compute_now(
                    home, metric_type, day, metrics=metrics or None, scope=scope,
                    settings=settings, store=store,
                )
            )  # fmt: skip
            progress.advance(task)
    emit([_row(s) for s in summaries], fmt, title=f"udf compute {', '.join(types)}")
    failed = [f"{m} {s['ds']}: {why}" for s in summaries for m, why in s["failed"].items()]
    if failed:
        raise UdfError(
            f"{len(failed)} metric-day(s) failed (the others were computed; "
            f"see `udf status --state failed`): {'; '.join(failed)}"
        )


def _row(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "metric_type": s["metric_type"],
        "date": s["ds"],
        "experiment": s["scope"] or "all",
        "metrics": len(s["computed"]),
        "failed": len(s["failed"]),
        "held elsewhere": len(s["held_elsewhere"]),
        "rows": s["rows"] or 0,
        "seconds": round(s["seconds"], 1),
    }
