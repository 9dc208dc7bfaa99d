"""Output for people (rich tables) and for scripts (JSON), chosen by ``--format``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _remember_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.meta["udf.format"] = value  # errors are printed in the same format (udf.cli._Cli)
    return value


format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    callback=_remember_format,
    help="A table for people or JSON for scripts (errors too, on stderr).",
)


def console(err: bool = False) -> Console:
    """A rich console; when output is not a terminal (a pipe, a log), tables get room to breathe."""
    probe = Console(stderr=err)
    width = None if probe.is_terminal else max(probe.width, 160)
    return Console(stderr=err, highlight=False, soft_wrap=False, width=width)


def emit(
    rows: Sequence[Mapping[str, Any]],
    fmt: str,
    *,
    title: str | None = None,
    columns: Iterable[str] | None = None,
) -> None:
    """Print ``rows`` as a table (``fmt='table'``) or as a JSON array (``fmt='json'``)."""
    if fmt == "json":
        click.echo(json.dumps(list(rows), indent=2, default=str))
        return
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    table = Table(title=title, title_justify="left")
    for col in cols:
        table.add_column(col, justify="right" if _numeric(rows, col) else "left")
    for row in rows:
        table.add_row(*(_cell(row.get(col)) for col in cols))
    console().print(table)


def _numeric(rows: Sequence[Mapping[str, Any]], col: str) -> bool:
    return bool(rows) and all(isinstance(r.get(col), int | float) for r in rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))  # text, not markup: "[udf] ..." must print as it is
