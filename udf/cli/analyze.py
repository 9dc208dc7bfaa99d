"""``udf analyze``: compare groups from a summary CSV (the contract §5)."""

from __future__ import annotations

import sys

import click

from udf.cli import home_option
from udf.cli.output import emit, format_option
from udf.errors import InputError


@click.command("analyze")
@click.option(
    "--summary", "summary", required=True, help="CSV with group,n,sum,sum_sq; '-' for stdin."
)
@click.option(
    "--alpha", type=float, default=0.05, show_default=True, help="Two-sided significance level."
)
@format_option
@home_option
def command(summary: str, alpha: float, fmt: str, home: str | None) -> None:
    """Welch t-test of every group against control: lifts, intervals, p-values."""
    from stats.analyze import FIELDS, analyze, decode_summary, read_summary

    # Bytes from both, decoded in one place: the same errors, and Excel's BOM accepted.
    if summary == "-":
        data, source = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            with open(summary, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise InputError(f"cannot read {summary}: {exc.strerror or exc}") from None
        source = summary
    rows = analyze(read_summary(decode_summary(data, source), source), alpha=alpha)
    columns = [*FIELDS, "status"] if any("status" in r for r in rows) else list(FIELDS)
    emit(rows, fmt, title=f"Welch t-test against control (alpha={alpha:g})", columns=columns)
