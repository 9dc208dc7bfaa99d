"""``udf status --validation``: the stored streaming-vs-batch validation reports."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from udf.cli.output import emit
from udf.home import Home

LISTED = 30  # reports listed without --date


def show_validation(home: Home, day: date | None, fmt: str) -> None:
    """The newest reports (or every report of ``day``, with its violations)."""
    from metadata.repository import MetadataStore
    from streaming.validation.report import percent

    with MetadataStore.for_home(home.ensure()) as store:
        reports = store.validation_reports(day=day, limit=None if day else LISTED)
    rows: list[dict[str, Any]] = [
        {
            "id": r.id,
            "date": r.day.isoformat(),
            "result": "passed" if r.passed else "FAILED",
            "violations": r.violations,
            "largest difference": percent(r.max_difference),
            "threshold": f"{r.threshold:.2%}",
            "where": r.report.get("max_difference_at", ""),
            "checked at": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for r in reports
    ]
    if fmt == "json":
        emit([{**row, "report": r.report} for row, r in zip(rows, reports, strict=True)], fmt)
        return
    emit(rows, fmt, title=f"{len(rows)} validation report(s)")
    if day is None:
        return
    for r in reports:
        listed = r.report.get("violations", [])
        if listed:
            emit(
                [{"rule": v["rule"], "scenario": v["scenario"], "what": v["message"]} for v in listed],
                fmt, title=f"report {r.id}: violations",
            )  # fmt: skip
        more = r.violations - len(listed)
        if more > 0:
            click.echo(f"... and {more} more in report {r.id}")
