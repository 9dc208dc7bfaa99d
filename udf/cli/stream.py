"""``udf stream replay|run``: the real-time pipeline on Flink (docs/streaming.md)."""

from __future__ import annotations

import signal
from typing import Any

import click

from udf.cli import pass_home
from udf.cli.output import emit, format_option
from udf.home import Home


@click.group(name="stream")
def command() -> None:
    """Real-time metrics on Flink: replay the archive, or follow imports as they come."""


def _runner(
    home: Home,
    mode: str,
    fmt: str,
    rate: float | None = None,
    cluster: bool = False,
    detach: bool = False,
) -> Any:
    from streaming.runner import Runner
    from udf.settings import load_settings

    def echo(text: str) -> None:
        if fmt != "json":
            click.echo(f"[{mode}] {text}", err=True)

    if detach and not cluster:
        raise click.UsageError("--detach needs --cluster (a job on the session cluster)")
    target = None
    if cluster:
        from streaming.cluster import Cluster

        target = Cluster.of(home.ensure())
    settings = load_settings(home)
    return Runner(
        home.ensure(), settings, mode, echo=echo, rate=rate, cluster=target, detach=detach
    )


cluster_option = click.option(
    "--cluster", is_flag=True, help="Submit to the session cluster of `udf flink up`."
)
detach_option = click.option(
    "--detach", is_flag=True, help="With --cluster: return once the job is submitted."
)


def _summary(report: dict[str, Any], fmt: str) -> None:
    rows = [
        {
            "topic": topic,
            "records": t["records"],
            "corrupt": t["corrupt"],
            "late": report["late"].get(topic, 0),
        }
        for topic, t in sorted(report["topics"].items())
    ]
    if fmt == "json":
        emit([report], fmt)
        return
    if report["status"] == "SUBMITTED":
        jobs = ", ".join(f"{name} {job['job_id']}" for name, job in report["jobs"].items())
        click.echo(f"submitted {jobs} to {report['rest_url']}")
        return
    emit(rows, fmt, title=f"udf stream {report['mode']}: {report['status'].lower()}, "
         f"{report['rows_written']:,} rows written in {report['seconds']} s")  # fmt: skip


@command.command(name="replay")
@click.option("--fresh", is_flag=True, help="Start from the beginning, not the last checkpoint.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="EVENTS_PER_S",
    help="Feed the archive at this many records/s, oldest first (a load test).",
)
@cluster_option
@detach_option
@format_option
@pass_home
def replay(
    home: Home, fresh: bool, rate: float | None, cluster: bool, detach: bool, fmt: str
) -> None:
    """Run the pipeline over the whole archive, then stop.

    Writes stream rows (aggregated, source=stream) for every date the data reaches. A replay
    that was killed resumes from its last checkpoint when run again. With --rate the archive
    is fed at that pace, like live traffic, and the sink writes as it goes.
    """
    runner = _runner(home, "replay", fmt, rate=rate, cluster=cluster, detach=detach)
    _summary(runner.execute(fresh=fresh), fmt)


@command.command(name="run")
@click.option("--fresh", is_flag=True, help="Start from the beginning, not the last checkpoint.")
@cluster_option
@detach_option
@format_option
@pass_home
def run(home: Home, fresh: bool, cluster: bool, detach: bool, fmt: str) -> None:
    """Run the pipeline continuously, following imports, until SIGTERM or Ctrl-C."""
    runner = _runner(home, "run", fmt, cluster=cluster, detach=detach)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    _summary(runner.execute(fresh=fresh), fmt)
