"""``udf archive``: fill the archive from Kafka (``kafka``) and show how far behind it is (``lag``)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from udf.archive.kafka_client import BATCH_RECORDS, BATCH_SECONDS, DEFAULT_GROUP
from udf.cli import pass_home
from udf.cli.output import console, emit, format_option
from udf.home import Home

if TYPE_CHECKING:
    from udf.archive.kafka_archiver import ArchiveRun

LAG_COLUMNS = ["topic", "kafka_topic", "partition", "archived", "earliest", "end", "lag", "lost"]

bootstrap_option = click.option(
    "--bootstrap",
    envvar="UDF_KAFKA_BOOTSTRAP",
    required=True,
    metavar="HOST:PORT[,...]",
    help="Kafka bootstrap servers (default: $UDF_KAFKA_BOOTSTRAP).",
)
topics_option = click.option(
    "--topic",
    "topics",
    multiple=True,
    required=True,
    metavar="TOPIC[=KAFKA_TOPIC]",
    help="An archive topic (events, activations), from the Kafka topic of the same name or "
    "the one after '='. Repeat for several.",
)
config_option = click.option(
    "--kafka-config",
    "kafka_config",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other librdkafka client setting (security.protocol, sasl.*, ...). Repeatable.",
)


@click.group(name="archive")
def command() -> None:
    """Fill the archive from live Kafka topics."""


@command.command(name="kafka")
@bootstrap_option
@topics_option
@click.option(
    "--group",
    default=DEFAULT_GROUP,
    show_default=True,
    help="Consumer group whose committed offsets Kafka's tools will show.",
)
@click.option("--once", is_flag=True, help="Stop when every partition is caught up.")
@click.option(
    "--until-idle",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Stop when no record came for this long.",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this long (a time budget for scheduled runs).",
)
@click.option(
    "--start",
    type=click.Choice(["earliest", "latest"]),
    default="earliest",
    show_default=True,
    help="Where a partition never archived before starts.",
)
@click.option(
    "--batch-records",
    type=click.IntRange(min=1),
    default=BATCH_RECORDS,
    show_default=True,
    help="Commit a batch at this many records...",
)
@click.option(
    "--batch-seconds",
    type=click.FloatRange(min=0),
    default=BATCH_SECONDS,
    show_default=True,
    help="...or this long after its first record.",
)
@config_option
@format_option
@pass_home
def kafka(
    home: Home,
    bootstrap: str,
    topics: tuple[str, ...],
    group: str,
    once: bool,
    until_idle: float | None,
    max_seconds: float | None,
    start: str,
    batch_records: int,
    batch_seconds: float,
    kafka_config: tuple[str, ...],
    fmt: str,
) -> None:
    """Archive Kafka topics exactly once, until SIGTERM or Ctrl-C (or --once, --until-idle, --max-seconds).

    Offsets are kept in the archive's ledger with the data; a restart, even after a crash,
    carries on where the archive ends.
    """
    from udf.archive.kafka_archiver import KafkaArchiver
    from udf.archive.kafka_client import KafkaSettings, parse_config, parse_routes

    settings = KafkaSettings(bootstrap, group, parse_config(kafka_config))
    archiver = KafkaArchiver(
        home,
        settings,
        parse_routes(topics),
        batch_records=batch_records,
        batch_seconds=batch_seconds,
        start=start,
    )
    show = sys.stderr.isatty() or os.environ.get("UDF_PROGRESS") == "1"
    err = console(err=True)

    def progress(run: ArchiveRun) -> None:
        if show:
            err.print(_status_line(run), markup=False)

    with _stop_on_signals() as stop:
        run = archiver.run(
            once=once, until_idle=until_idle, max_seconds=max_seconds, stop=stop, progress=progress
        )
    if fmt == "json":
        emit([run.as_dict()], fmt)
        return
    emit(
        [t.__dict__ for t in run.topics],
        fmt,
        title=f"archived ({run.stopped} after {run.seconds:.1f} s)",
    )
    emit([row.as_dict() for row in run.lag], fmt, title="lag", columns=LAG_COLUMNS)


@command.command(name="lag")
@bootstrap_option
@topics_option
@config_option
@format_option
@pass_home
def lag(
    home: Home, bootstrap: str, topics: tuple[str, ...], kafka_config: tuple[str, ...], fmt: str
) -> None:
    """Per partition: Kafka's end offset, the archive's next offset, and the lag between them."""
    from udf.archive.kafka_client import KafkaSettings, archive_lag, parse_config, parse_routes

    settings = KafkaSettings(bootstrap, config=parse_config(kafka_config))
    rows = [row.as_dict() for row in archive_lag(home.archive, settings, parse_routes(topics))]
    emit(rows, fmt, title=f"archive lag behind {bootstrap}", columns=LAG_COLUMNS)
    if fmt != "json":
        lost = sum(r["lost"] for r in rows)
        click.echo(
            f"total lag {sum(r['lag'] for r in rows):,} records"
            + (f"; {lost:,} lost to Kafka's retention before archiving" if lost else "")
        )


def _status_line(run: ArchiveRun) -> str:
    parts = [
        f"{t.topic}: {t.records:,} archived, {t.corrupt:,} corrupt, "
        f"lag {sum(r.lag for r in run.lag if r.topic == t.topic):,}"
        for t in run.topics
    ]
    return f"[{run.seconds:6.1f} s] " + "; ".join(parts)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT: the archiver finishes its batch and stops cleanly."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
