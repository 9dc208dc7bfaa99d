"""``udf flink up|down|status``: the local Flink session cluster (docs/streaming.md, Operations)."""

from __future__ import annotations

from typing import Any

import click

from udf.cli import pass_home
from udf.cli.output import emit, format_option
from udf.home import Home


@click.group(name="flink")
def command() -> None:
    """A local Flink session cluster (JobManager + TaskManager) from the PyFlink wheel."""


def _cluster(home: Home) -> Any:
    from streaming.cluster import Cluster

    return Cluster.of(home.ensure())


def _show(report: dict[str, Any], fmt: str, title: str) -> None:
    emit([report], fmt, title=title)


@command.command(name="up")
@format_option
@pass_home
def up(home: Home, fmt: str) -> None:
    """Start the cluster; REST and web UI on localhost at flink.rest_port (settings.yaml).

    Fails when this home's cluster already runs or the port is in use.
    """
    cluster = _cluster(home)
    report = cluster.up()
    _show(report, fmt, f"Flink cluster up: {cluster.rest_url} (logs in {cluster.log_dir})")


@command.command(name="down")
@format_option
@pass_home
def down(home: Home, fmt: str) -> None:
    """Stop the cluster (its running jobs stop with it; checkpoints remain)."""
    stopped = _cluster(home).down()
    _show({"stopped": ", ".join(stopped)}, fmt, "Flink cluster down")


@command.command(name="status")
@format_option
@pass_home
def status(home: Home, fmt: str) -> None:
    """The cluster's processes, slots and running jobs; exits 1 when it is not running."""
    from streaming.cluster import ClusterError

    cluster = _cluster(home)
    report = cluster.status()
    if not report["running"]:
        raise ClusterError(f"no Flink cluster is running in {home.root}: `udf flink up` starts one")
    _show(report, fmt, f"Flink cluster at {cluster.rest_url}")
