"""``udf generate``: write a deterministic synthetic workload (see ``docs/workload.md``)."""

from __future__ import annotations

from pathlib import Path

import click

from udf.cli import pass_home
from udf.cli.output import console, emit, format_option
from udf.home import Home
from udf.workload.params import WorkloadParams

_D = WorkloadParams()


@click.command("generate")
@click.option(
    "--out",
    "out",
    type=click.Path(),
    default=None,
    help="Output directory (default: <home>/workload).",
)
@click.option(
    "--events",
    type=int,
    default=_D.events,
    show_default=True,
    help="Valid event records to write (duplicate copies included).",
)
@click.option("--users", type=int, default=_D.users, show_default=True)
@click.option(
    "--experiments",
    type=int,
    default=_D.experiments,
    show_default=True,
    help="Experiments; scenarios single/reramp_in/reramp_after take turns.",
)
@click.option(
    "--days",
    type=int,
    default=_D.days,
    show_default=True,
    help="Days of event time (at least --window-days + 2).",
)
@click.option(
    "--start",
    default=_D.start,
    show_default=True,
    help="First day of event time, YYYY-MM-DD (UTC).",
)
@click.option("--seed", type=int, default=_D.seed, show_default=True)
@click.option(
    "--window-days",
    type=int,
    default=_D.window_days,
    show_default=True,
    help="Aggregation window W in days.",
)
@click.option("--event-types", type=int, default=_D.event_types, show_default=True)
@click.option(
    "--corrupt-share",
    type=float,
    default=_D.corrupt_share,
    show_default=True,
    help="Corrupt lines added per topic, as a share of its valid records.",
)
@click.option(
    "--duplicate-share",
    type=float,
    default=_D.duplicate_share,
    show_default=True,
    help="Exact duplicate copies, as a share of unique records.",
)
@click.option(
    "--late-share",
    type=float,
    default=_D.late_share,
    show_default=True,
    help="Share of records delivered 1..--max-late-hours h after their event time.",
)
@click.option("--max-late-hours", type=int, default=_D.max_late_hours, show_default=True)
@click.option("--spammers", type=int, default=_D.spammers, show_default=True)
@click.option(
    "--spam-cap",
    type=int,
    default=_D.spam_cap,
    show_default=True,
    help="The hourly cap X; spammers emit 1.5X..5X events in some hours.",
)
@click.option(
    "--segment-share",
    type=float,
    default=_D.segment_share,
    show_default=True,
    help="Share of events carrying country/platform.",
)
@click.option(
    "--trigger-share",
    type=float,
    default=_D.trigger_share,
    show_default=True,
    help="Share of activity that triggers an activation.",
)
@click.option(
    "--skew",
    type=float,
    default=_D.skew,
    show_default=True,
    help="Share of the first experiment's control users put in its treatment (an SRM).",
)
@click.option(
    "--cross-group-share",
    type=float,
    default=_D.cross_group_share,
    show_default=True,
    help="Share of the triggers of each scenario's first experiment sent to another group "
    "(users in two groups).",
)
@click.option("--force", is_flag=True, help="Replace the content of a non-empty --out.")
@format_option
@pass_home
def command(home: Home, out: str | None, force: bool, fmt: str, **options) -> None:
    """Write a deterministic synthetic workload: ramps.csv, events, activations, manifest."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from udf.workload.generator import check_output, generate

    params = WorkloadParams(**options)
    params.validate()
    target = Path(out) if out else home.root / "workload"
    check_output(target, force)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(err=True),
        transient=False,
    ) as bar:
        task = bar.add_task("hours", total=params.hours)
        manifest = generate(
            params,
            target,
            force=force,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    emit(summary_rows(manifest), fmt, title=f"Workload in {target}")


def summary_rows(manifest: dict) -> list[dict]:
    """One row per topic: records, corrupt lines, duplicates, late records, spammers."""
    rows = []
    for topic, stats in manifest["topics"].items():
        rows.append(
            {
                "topic": topic,
                "files": len(stats["files"]),
                "lines": stats["lines"],
                "records": stats["valid"],
                "corrupt": stats["corrupt"],
                "duplicates": stats["duplicate_copies"],
                "late": stats["late"],
                "spammers": len(manifest["spam"]["spammer_user_ids"]) if topic == "events" else 0,
            }
        )
    return rows
