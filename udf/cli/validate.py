"""``udf validate --date D``: the daily streaming-vs-batch validation (docs/streaming.md).

Recomputes the day's ``aggregated`` metrics in batch (as ``udf compute`` does), checks the
stream's rows against three rules for each ramp scenario, stores the report (``udf status
--validation`` shows it) and emails it on a violation. Exits 1 on any violation.
"""

from __future__ import annotations

import json
import sys

import click

from udf.cli import pass_home
from udf.cli.compute import _date
from udf.cli.output import emit, format_option
from udf.home import Home


@click.command(name="validate")
@click.option("--date", "day", required=True, help="The day to validate, YYYY-MM-DD.")
@click.option(
    "--recompute/--no-recompute",
    default=True,
    show_default=True,
    help="Recompute the day in batch first (--no-recompute: compare with the stored batch rows).",
)
@format_option
@pass_home
def command(home: Home, day: str, recompute: bool, fmt: str) -> None:
    """Check the stream's rows of a day against the batch; exit 1 on any violation."""
    from streaming.validation.report import check_rows, summary, violation_rows
    from streaming.validation.run import run_validation
    from udf.settings import load_settings

    when = _date(day, "--date")
    home = home.ensure()
    outcome = run_validation(home, when, load_settings(home), recompute=recompute)
    report = outcome.report
    if fmt == "json":
        body = {**report.to_dict(), "report_id": outcome.report_id,
                "emails_sent": outcome.emails_sent, "emails_failed": outcome.emails_failed}  # fmt: skip
        click.echo(json.dumps(body, indent=2, default=str))
    else:
        emit(check_rows(report), fmt, title=f"udf validate {report.day}")
        if report.violations:
            emit(violation_rows(report), fmt, title="violations")
        click.echo(summary(report) + f" (report {outcome.report_id})")
        if outcome.emails_failed:
            click.echo(
                f"{len(outcome.emails_failed)} email(s) not delivered yet; they are retried "
                "at the next validation (udf status --alerts)", err=True,
            )  # fmt: skip
    if not report.passed:
        sys.exit(1)
