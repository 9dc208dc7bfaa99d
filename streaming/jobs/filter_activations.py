"""Filter activations: keep those inside a period of their group, and add the period.

The seed holds the recently-ramped-groups snapshot as broadcast state in a
KeyedBroadcastProcessFunction. Here the snapshot is a table (:mod:`streaming.snapshot`
publishes versions; the newest version of each piece wins) and the filter is a regular join
on (experiment, group) with ``lo <= ts < hi``: the snapshot holds each period in pieces cut
at the experiment's allocation intervals, so each activation also gets the interval it fell
in (for the SRM check). A regular join keeps its inputs, so an activation that arrives before
its group's period is published is kept, and a re-ramp that extends a period's end lets the
activations of the extension in and re-keys everything downstream through retractions: the
same periods as batch at every moment.

Outputs of :func:`build`: ``checked_activations`` (every line, checked),
``valid_activations`` (user, experiment, group, ts: the seed's intermediate topic),
``corrupt_activations`` and ``progress_activations``; of :func:`add_periods`:
``filtered_activations`` (the valid ones with their period start and end and their
interval's start).
"""

from __future__ import annotations

from typing import Any

from streaming import parse
from streaming.jobs import Sink
from streaming.plan import StreamPlan
from streaming.sources import SourceTables


def checked(t_env: Any, source: SourceTables) -> str:
    """Every activation line, checked; a valid line's text is dropped (only dead letters need it)."""
    return parse.checked_query(t_env, "activations", source.activations, valid_lines=False)


def build(t_env: Any, source: SourceTables, sink: Sink, plan: StreamPlan) -> None:
    """Check and strip (every record on its own: what may cross a topic, see below)."""
    sink("checked_activations", checked(t_env, source), changelog=False)
    valid = parse.valid_query("checked_activations", ["user_id", "experiment", "`group`", "ts"])
    sink("valid_activations", valid, changelog=False, one_reader=True)
    sink("corrupt_activations", parse.corrupt_query("checked_activations", "activations"),
         changelog=False)  # fmt: skip
    sink("progress_activations", parse.progress_query("checked_activations", "activations"))


def add_periods(t_env: Any, activations: str, periods: str, sink: Sink) -> None:
    """Keep the ``activations`` inside a period of their group and add the period and the
    allocation interval they fall in (the snapshot's pieces): ``filtered_activations``. With the jobs apart this runs in the aggregation job, after
    the topic: a join's output depends on when the periods changed, and a filter job
    restarted from a checkpoint could send other rows than those it sent before, where an
    at-least-once topic keeps both (docs/streaming.md, "Jobs apart")."""
    sink(
        "periods",
        "SELECT experiment, grp, period_start, period_end, interval_start, lo, hi FROM ("
        "SELECT *, ROW_NUMBER() OVER (PARTITION BY experiment, grp, period_start, "
        f"interval_start ORDER BY version DESC) AS rn FROM {periods}) WHERE rn = 1 AND alive",
    )
    sink(
        "filtered_activations",
        "SELECT a.user_id, a.experiment, a.`group` AS grp, a.ts, p.period_start, p.period_end, "
        f"p.interval_start FROM {activations} AS a JOIN periods AS p "
        "ON a.experiment = p.experiment AND a.`group` = p.grp "
        "WHERE a.ts >= p.lo AND a.ts < p.hi",
        one_reader=True,
    )
