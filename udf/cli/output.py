"""Output for people (rich tables) and for scripts (JSON), chosen by ``--format``.

Tables show every value whole. On a terminal, long texts wrap to its width, and a table
that still does not fit is shown one record per block; anywhere else (a pipe, a file)
rows are never wrapped or cut, so each stays one line for grep and diff.
"""

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


# Wide enough for any table: off a terminal, a table is as wide as its content needs.
UNLIMITED_WIDTH = 100_000


def console(err: bool = False) -> Console:
    """A rich console; when output is not a terminal (a pipe, a file, a log) tables are never
    wrapped or cut, whatever ``$COLUMNS`` says: each row stays one line for grep and diff."""
    probe = Console(stderr=err)
    width = None if probe.is_terminal else UNLIMITED_WIDTH
    return Console(stderr=err, highlight=False, soft_wrap=False, width=width)


def emit(
    rows: Sequence[Mapping[str, Any]],
    fmt: str,
    *,
    title: str | None = None,
    columns: Iterable[str] | None = None,
) -> None:
    """Print ``rows`` as a table (``fmt='table'``) or as a JSON array (``fmt='json'``).

    A table too wide for the terminal, even with its long texts wrapped, is printed one
    record at a time instead (``column  value`` lines, like psql's expanded display).
    """
    if fmt == "json":
        click.echo(json.dumps(list(rows), indent=2, default=str))
        return
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    cells = [[_cell(row.get(col)) for col in cols] for row in rows]
    table = Table()
    needed = len(cols) * 3 + 1  # borders and padding
    for i, col in enumerate(cols):
        values = [line[i] for line in cells]
        # Names, dates and numbers are never broken; texts wrap, and a word longer than its
        # column folds onto the next line: a value is never cut to "aggrega…".
        whole = all(len(v) <= WHOLE_WIDTH and " " not in v for v in values)
        widest = max([len(w) for v in values for w in (v.split() if not whole else [v])] or [0])
        needed += max(widest, *(len(w) for w in col.split()))
        table.add_column(
            col,
            justify="right" if _numeric(rows, col) else "left",
            overflow="fold",
            no_wrap=whole,
            min_width=widest if whole else None,
        )
    for line in cells:
        table.add_row(*line)
    out = console()
    if title:  # a line of its own: as a table's caption, it would wrap to the table's width
        out.print(title, style="italic", markup=False)
    if out.is_terminal and rows and needed > out.width:
        _records(out, cols, cells)
    else:
        out.print(table)


# Cells up to this long without a space (names, ids, dates, numbers) are kept on one line.
WHOLE_WIDTH = 40


def _records(out: Console, cols: Sequence[str], cells: Sequence[Sequence[str]]) -> None:
    for n, line in enumerate(cells, 1):
        out.rule(f"record {n}", align="left", characters="-")
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for col, value in zip(cols, line, strict=True):
            grid.add_row(col, value)
        out.print(grid)


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
