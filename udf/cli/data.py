"""``udf data``: import records into the archive and show what it holds."""

from __future__ import annotations

import os
import sys
from collections import Counter, deque

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from udf.archive.layout import TOPICS
from udf.cli import pass_home
from udf.cli.output import console, emit, format_option
from udf.home import Home

PROGRESS_MIN_BYTES = 16 << 20


@click.group(name="data")
def command() -> None:
    """The archive of input records (events, activations)."""


@command.command(name="import")
@click.option("--topic", required=True, type=click.Choice(TOPICS), help="Topic to append to.")
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=None,
    help="Partition count, only when the topic is first created (default 8).",
)
@click.argument("files", nargs=-1, required=True)
@format_option
@pass_home
def import_(
    home: Home, topic: str, partitions: int | None, files: tuple[str, ...], fmt: str
) -> None:
    """Append JSONL FILES (or - for stdin) to the archive; corrupt lines are dead-lettered.

    Each file is imported atomically; a file whose exact bytes were imported before is
    detected and skipped.
    """
    from udf.archive.importer import Importer

    importer = Importer(home.ensure())
    total = sum(os.path.getsize(f) for f in files if f != "-" and os.path.isfile(f))
    show = (total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()) or os.environ.get(
        "UDF_PROGRESS"
    ) == "1"
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console(err=True),
        disable=not show,
    ) as bar:
        task = bar.add_task(f"importing {topic}", total=total or None)
        reports = importer.import_files(
            topic, files, partitions=partitions, progress=lambda n: bar.advance(task, n)
        )
    rows = [
        {
            "file": os.path.basename(r.source) if r.source != "<stdin>" else r.source,
            "status": f"duplicate of {r.duplicate_of}" if r.duplicate_of else "imported",
            "records": 0 if r.duplicate_of else r.records,
            "corrupt": 0 if r.duplicate_of else r.corrupt,
            "hours": f"{r.first_hour} .. {r.last_hour}" if r.first_hour else "",
            "dead letters": os.path.relpath(r.deadletter, home.root) if r.deadletter else "",
        }
        for r in reports
    ]
    if fmt == "json":
        emit([r.as_dict() for r in reports], fmt)
        return
    emit(rows, fmt, title=f"import into {topic}")
    imported = [r for r in reports if not r.duplicate_of]
    click.echo(
        f"{topic}: {sum(r.records for r in imported):,} records imported, "
        f"{sum(r.corrupt for r in imported):,} corrupt dead-lettered, "
        f"{len(reports) - len(imported)} duplicate file(s) skipped"
    )


@command.command(name="info")
@format_option
@pass_home
def info(home: Home, fmt: str) -> None:
    """Show what the archive holds per topic (committed imports only)."""
    from udf.archive.inventory import inventory

    rows = [row.__dict__ for row in inventory(home)]
    emit(rows, fmt, title=f"archive {home.archive}")


@command.command(name="deadletters")
@click.option("--topic", type=click.Choice(TOPICS), default=None)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many of the newest dead letters to list (0: only the counts).",
)
@format_option
@pass_home
def deadletters(home: Home, topic: str | None, limit: int, fmt: str) -> None:
    """Count dead-lettered lines by topic and kind, and show the newest ones with their reasons."""
    from udf.archive.inventory import dead_letters

    topics = (topic,) if topic else TOPICS
    counts: Counter[tuple[str, str]] = Counter()
    newest: deque[dict] = deque(maxlen=limit)
    for letter in dead_letters(home, topics):
        counts[(letter["topic"], letter["kind"])] += 1
        newest.append(letter)
    summary = [{"topic": t, "kind": k, "lines": n} for (t, k), n in sorted(counts.items())]
    if fmt == "json":
        emit([{"counts": summary, "newest": list(newest)}], fmt)
        return
    emit(summary, fmt, title="dead letters", columns=["topic", "kind", "lines"])
    if newest:
        rows = [letter | {"where": _where(letter)} for letter in newest]
        emit(
            rows,
            fmt,
            title=f"newest {len(newest)}",
            columns=["topic", "import_id", "source", "where", "reason", "raw"],
        )


def _where(letter: dict) -> str:
    """A file's line number, or a Kafka record's partition and offset."""
    if "offset" in letter:
        return f"partition {letter.get('partition')} offset {letter['offset']}"
    return f"line {letter.get('line')}"


@command.command(name="seal")
@click.option("--topic", required=True, type=click.Choice(TOPICS), help="Topic to declare closed.")
@click.option(
    "--through",
    "through",
    required=True,
    metavar="YYYY-MM-DD[THH]",
    help="Last complete UTC day, or hour (e.g. 2026-01-03T05: hours up to 05:59).",
)
@click.option("--force", is_flag=True, help="Allow moving the marker back (after a correction).")
@format_option
@pass_home
def seal(home: Home, topic: str, through: str, force: bool, fmt: str) -> None:
    """Declare TOPIC complete through a day or hour: metric-days up to it become ready.

    The marker (<archive>/<topic>/_closed.json) never moves back without --force. Imports a
    crash interrupted are finished first, so the hours sealed hold them whole.
    """
    from udf.archive.seal import parse_through
    from udf.archive.seal import seal as seal_topic
    from udf.archive.view import finish_interrupted_imports

    through_ms = parse_through(through)
    finish_interrupted_imports(home.ensure())
    result = seal_topic(home.archive, topic, through_ms, force=force)
    row = {
        "topic": topic,
        "closed_through": f"{result.closed_through:%Y-%m-%dT%H:%M}Z",
        "closed_through_ms": result.closed_through_ms,
        "previous_ms": result.previous_ms,
        "changed": result.changed,
    }
    if fmt == "json":
        emit([row], fmt)
        return
    what = "sealed" if result.changed else "already sealed"
    click.echo(f"{topic}: {what} through {row['closed_through']} (exclusive)")
