"""``udf experiments``: experiments with their groups, ramp history and aggregation periods.

The periods come from :func:`metadata.periods.aggregation_periods`, the same function the
batch and streaming engines use, so what this shows is what they compute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from udf.cli import pass_home
from udf.cli.output import emit, format_option
from udf.errors import InputError
from udf.home import Home


def _window(ctx: click.Context, param: click.Parameter, days: float | None) -> float | None:
    from metadata.periods import window_ms

    if days is None:
        return None
    try:
        window_ms(days)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return days


window_option = click.option(
    "--window-days",
    type=float,
    default=None,
    callback=_window,
    help="Aggregation window W in days (the contract §3), from 1 hour (0.0417) to 3650 "
    "[default: the home's window_days, which batch and stream use].",
)


@click.group(name="experiments")
def command() -> None:
    """Experiments in the metadata store."""


@command.command(name="list")
@window_option
@format_option
@pass_home
def list_(home: Home, window_days: float | None, fmt: str) -> None:
    """Every experiment with its groups, ramps and the aggregation periods they imply."""
    from metadata.repository import MetadataStore

    days = _window_of(home, window_days)
    with MetadataStore.for_home(home.ensure()) as store:
        experiments = store.experiments()
    _emit([_describe(e, days) for e in experiments], fmt)


@command.command(name="show")
@click.argument("name")
@window_option
@format_option
@pass_home
def show(home: Home, name: str, window_days: float | None, fmt: str) -> None:
    """One experiment NAME with its groups, ramps, periods and selected metrics."""
    from metadata.repository import MetadataStore

    days = _window_of(home, window_days)
    with MetadataStore.for_home(home.ensure()) as store:
        experiment = store.experiment(name)
    if experiment is None:
        raise InputError(f"no experiment named {name!r}; import its ramps first")
    _emit([_describe(experiment, days)], fmt)


def _window_of(home: Home, window_days: float | None) -> float:
    """``--window-days``, else the home's ``window_days`` (settings.yaml, ``UDF_WINDOW_DAYS``):
    the periods shown are then the ones batch and stream compute."""
    if window_days is not None:
        return window_days
    from udf.settings import load_settings

    return load_settings(home).window_days


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datetime(ms: int) -> datetime | None:
    """None past the year 9999: a ramp near the limit (or stored before imports were bounded)
    can open a period that ends after the last date Python can name."""
    try:
        return _EPOCH + timedelta(milliseconds=ms)  # exact, unlike fromtimestamp(ms / 1000)
    except OverflowError:
        return None


def _iso(ms: int) -> str | None:
    when = _datetime(ms)
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def _short(ms: int) -> str:
    when = _datetime(ms)
    return "after 9999" if when is None else when.strftime("%Y-%m-%d %H:%M")


def _describe(experiment: Any, window_days: float) -> dict[str, Any]:
    from metadata.periods import window_ms

    window = window_ms(window_days)
    groups = []
    for group in experiment.groups:
        groups.append(
            {
                "group": group.name,
                "is_control": group.is_control,
                "ramps": [
                    {"ramp_ts": r.ramp_ts, "ramp_utc": _iso(r.ramp_ts), "allocation": r.allocation}
                    for r in group.ramps
                ],
                "periods": [
                    {
                        "start": p.start,
                        "end": p.end,
                        "start_utc": _iso(p.start),
                        "end_utc": _iso(p.end),
                        "ramps": len(p.ramps),
                    }
                    for p in group.periods(window)
                ],
            }
        )
    return {
        "experiment": experiment.name,
        "description": experiment.description,
        "window_days": window_days,
        "groups": groups,
        "metrics": list(experiment.metrics),
        "segments": list(experiment.segments),
        "analysis": experiment.analysis,
    }


def _emit(described: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        emit(described, fmt)
        return
    rows = []
    for exp in described:
        if not exp["groups"]:
            rows.append({"experiment": exp["experiment"], "group": "", "ramps": 0})
        for group in exp["groups"]:
            last = group["ramps"][-1]["allocation"] if group["ramps"] else None
            periods = group["periods"] or [None]
            for period in periods:
                rows.append(
                    {
                        "experiment": exp["experiment"],
                        "group": group["group"],
                        "ramps": len(group["ramps"]),
                        "allocation %": last,
                        "period start": _short(period["start"]) if period else "",
                        "period end": _short(period["end"]) if period else "",
                    }
                )
    columns = ["experiment", "group", "ramps", "allocation %", "period start", "period end"]
    emit(rows, fmt, title="Experiments", columns=columns)
