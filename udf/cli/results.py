"""``udf results``: export and show the results the store holds (the contract §4-5)."""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

import click

from results.schema import SOURCES, ResultRow
from udf.cli import pass_home
from udf.cli.output import emit, format_option
from udf.errors import InputError
from udf.home import Home

SHOWN = ("date", "source", "metric_type", "experiment", "group", "metric", "day_in",
         "segment", "segment_value", "n", "sum", "lift_rel", "ci_low", "ci_high", "p_value",
         "status")  # fmt: skip
_day = click.DateTime(formats=["%Y-%m-%d"])
F = TypeVar("F", bound=Callable[..., object])


@click.group(name="results")
def command() -> None:
    """Results of the batch and streaming computations, from the configured store."""


def _filters(func: F) -> F:
    """The filters ``export`` and ``show`` share."""
    func = click.option("--date-to", type=_day, default=None, help="Last date (inclusive).")(func)
    func = click.option("--date-from", type=_day, default=None, help="First date (inclusive).")(
        func
    )
    return click.option("--metric-type", default=None, help="Only this metric type.")(func)


@command.command(name="export")
@click.option(
    "--source", required=True, type=click.Choice(SOURCES), help="Batch or stream results."
)
@_filters
@click.option("--output", "-o", required=True, help="JSONL file to write, - for stdout.")
@pass_home
def export(
    home: Home,
    source: str,
    metric_type: str | None,
    date_from: datetime | None,
    date_to: datetime | None,
    output: str,
) -> None:
    """Write the results as JSON lines, one object per row with every schema column.

    A file is written next to its final name and renamed into place once complete, so an
    interrupted export leaves no partial file. A symbolic link is written through (its target
    is replaced); a FIFO or a device is streamed to; anything else that is not a regular file
    (a directory, a socket) is refused.
    """
    target = _output_target(output)
    rows = _read(home, source, metric_type, date_from, date_to)
    lines = (json.dumps(row.to_dict(), ensure_ascii=False) + "\n" for row in rows)
    if target is None:
        stdout = sys.stdout.buffer  # UTF-8 whatever the locale says
        for line in lines:
            stdout.write(line.encode("utf-8"))
        stdout.flush()
    elif target.exists() and not target.is_file():
        with target.open("w", encoding="utf-8", newline="\n") as out:  # a FIFO or a device
            out.writelines(lines)
    else:
        _write_atomically(target, lines)
    click.echo(f"exported {len(rows):,} {source} result rows to {output}", err=True)


@command.command(name="show")
@click.option(
    "--source", type=click.Choice(SOURCES), default=None, help="Batch or stream (default: both)."
)
@_filters
@click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable).")
@click.option(
    "--experiment", "experiments", multiple=True, help="Only this experiment (repeatable)."
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many rows to show.")  # fmt: skip
@format_option
@pass_home
def show(
    home: Home,
    source: str | None,
    metric_type: str | None,
    date_from: datetime | None,
    date_to: datetime | None,
    metrics: tuple[str, ...],
    experiments: tuple[str, ...],
    limit: int,
    fmt: str,
) -> None:
    """Show results rows in key order (a table of the main columns, or JSON with every column)."""
    rows = _read(
        home, source, metric_type, date_from, date_to, metrics or None, experiments or None
    )
    shown = rows[:limit]
    if fmt == "json":
        emit([row.to_dict() for row in shown], fmt)
        return
    title = f"{len(shown):,} of {len(rows):,} result rows"
    emit([row.to_dict() for row in shown], fmt, title=title, columns=SHOWN)


def _read(
    home: Home,
    source: str | None,
    metric_type: str | None,
    date_from: datetime | None,
    date_to: datetime | None,
    metrics: Sequence[str] | None = None,
    experiments: Sequence[str] | None = None,
) -> list[ResultRow]:
    from results.stores import open_store
    from udf.settings import load_settings

    first, last = _date(date_from), _date(date_to)
    if first and last and first > last:
        raise InputError(f"--date-from {first} is after --date-to {last}")
    with open_store(home, load_settings(home)) as store:
        return store.read(
            source=source, metric_type=metric_type, date_from=first, date_to=last,
            metrics=metrics, experiments=experiments,
        )  # fmt: skip


def _output_target(output: str) -> Path | None:
    """Where ``--output`` writes: ``None`` for stdout, else the path (a link's target)."""
    if output == "-":
        return None
    path = Path(output)
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target  # a new file (or a dangling link's target)
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return target
    kind = (
        "a directory" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file"
    )
    raise InputError(f"--output {output} is {kind}: give a file path (or - for stdout)")


def _date(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _write_atomically(path: Path, lines: Iterable[str]) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            for line in lines:
                out.write(line)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp's 0600 would hide the export from others; a replaced file keeps its mode
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~umask
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
