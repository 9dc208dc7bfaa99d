"""``udf config``: validate the metric catalog and load it into the metadata store."""

from __future__ import annotations

from typing import Any

import click

from udf.cli import pass_home
from udf.cli.output import console, emit, format_option
from udf.errors import ConfigError
from udf.home import Home

plan_option = click.option(
    "--plan",
    is_flag=True,
    help="Also plan each custom SQL with Spark against empty views (starts Spark: seconds).",
)


@click.group(name="config")
def command() -> None:
    """Metric catalog files (metrics, segments, per-experiment selection)."""


@command.command(name="validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@plan_option
@format_option
@pass_home
def validate(home: Home, paths: tuple[str, ...], plan: bool, fmt: str) -> None:
    """Check catalog files or directories; report every error with its file and field.

    With --plan, Spark also plans each custom SQL against empty views, catching what it
    cannot resolve (a function, a column, a value that is not a number) before compute does,
    on a session of the home's ``spark`` settings.
    """
    from udf.config.loader import load_catalog

    loaded = load_catalog(paths)
    if plan:
        _plan(home, loaded, fmt)
    _report(loaded.files, fmt)
    loaded.raise_for_issues()


@command.command(name="load")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@plan_option
@format_option
@pass_home
def load(home: Home, paths: tuple[str, ...], plan: bool, fmt: str) -> None:
    """Load the valid catalog files into the metadata store; report the invalid ones.

    Good files load even when others are broken; the command then exits 1 listing every issue.
    """
    from metadata.repository import MetadataStore
    from udf.config.loader import load_catalog

    loaded = load_catalog(paths)
    if plan:
        _plan(home, loaded, fmt)
    metrics, segments, selections, source_files = [], [], [], {}
    for file, catalog in loaded.files.items():
        metrics.extend(catalog.metrics)
        segments.extend(catalog.segments)
        selections.extend(catalog.experiments)
        source_files.update({m.name: file for m in catalog.metrics})
    if loaded.files:
        store = MetadataStore.for_home(home.ensure())
        summary = store.sync_catalog(metrics, segments, selections, source_files)
        click.echo(
            f"loaded {len(loaded.files)} file(s): metrics {summary.metrics_added} added, "
            f"{summary.metrics_updated} updated, {summary.metrics_unchanged} unchanged; "
            f"segments {summary.segments_added} added, {summary.segments_updated} updated, "
            f"{summary.segments_unchanged} unchanged; experiment selections changed: "
            f"{summary.selections_changed}"
        )
    _report(loaded.files, fmt)
    if loaded.issues:
        raise ConfigError(loaded.issues)


def _plan(home: Home, loaded: Any, fmt: str) -> None:
    """Plan the valid files' custom SQL on a session of the home's Spark settings; a file
    with a query Spark refuses is rejected whole."""
    from rich.progress import Progress

    from udf.config.planning import custom_sql_count, plan_custom_sql
    from udf.settings import load_settings

    spark = load_settings(home).spark if custom_sql_count(loaded.files) else None

    total = custom_sql_count(loaded.files)
    with Progress(console=console(err=True), transient=True, disable=fmt == "json") as bar:
        task = bar.add_task("planning custom SQL", total=total)
        issues = plan_custom_sql(loaded.files, progress=lambda: bar.advance(task), spark=spark)
    for issue in issues:
        loaded.files.pop(issue.file, None)
    loaded.issues.extend(issues)


def _report(files: dict, fmt: str) -> None:
    rows = [
        {
            "file": f,
            "metrics": len(c.metrics),
            "segments": len(c.segments),
            "experiments": len(c.experiments),
        }
        for f, c in files.items()
    ]
    if rows:
        emit(rows, fmt, title="valid catalog files")
