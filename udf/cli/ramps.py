"""``udf ramps import``: load ramp history (the contract §2 CSV) into the metadata store.

The whole file is checked before anything is written: one bad line rejects the file with
its line number, and so does a ramp that lowers a group's allocation, so a store never holds
half an import. An experiment without a ``control`` group is imported with a warning. Re-importing rows already stored
changes nothing and says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from udf.cli import pass_home
from udf.cli.output import format_option
from udf.errors import InputError
from udf.home import Home


@click.group(name="ramps")
def command() -> None:
    """Experiment ramp history (experiment,group,ramp_ts,allocation)."""


@command.command(name="import")
@click.argument("file")
@format_option
@pass_home
def import_(home: Home, file: str, fmt: str) -> None:
    """Import ramps from a CSV FILE (- for stdin): all rows or none."""
    from metadata.ramps_csv import parse_ramps
    from metadata.repository import MetadataStore

    source = "<stdin>" if file == "-" else file
    try:
        with click.open_file(file, encoding="utf-8-sig") as handle:
            rows = parse_ramps(handle, source)
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text: {exc.reason}") from exc
    with MetadataStore.for_home(home.ensure()) as store:
        summary = store.import_ramps(rows)
    if fmt == "json":
        click.echo(json.dumps({"file": source, **asdict(summary), "changed": summary.changed}))
        return
    ramps = summary.ramps_added + summary.ramps_updated + summary.ramps_unchanged
    click.echo(
        f"{source}: {summary.experiments} experiment(s) ({summary.experiments_added} new), "
        f"{summary.groups} group(s) ({summary.groups_added} new), {ramps} ramp(s): "
        f"{summary.ramps_added} added, {summary.ramps_updated} updated, "
        f"{summary.ramps_unchanged} unchanged"
    )
    if not summary.changed:
        click.echo("nothing changed: every ramp was already imported")
    for name in summary.without_control:
        click.echo(
            f"warning: experiment {name} has no group named 'control': its groups are shown "
            "without a comparison (no lift, interval or p-value) until a control is imported",
            err=True,
        )
