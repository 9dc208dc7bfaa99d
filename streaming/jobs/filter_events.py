"""Filter events: validate and strip (the seed's filter-events job).

* **Validate**: :mod:`streaming.parse` (the importer's rules in SQL); corrupt lines go to
  ``corrupt_events`` (dead-lettered by the pipeline) and are counted.
* **Strip**: only ``user_id, event_type, ts, value`` and the segment fields the plan breaks
  groups down by are kept. Every event type is kept: each one is a default metric.

The seed caps spammers here, before its aggregation job de-duplicates. Batch de-duplicates
first and caps the events left (docs/metrics.md §1), and both rules are per user: the
aggregation job's per-user operator (:mod:`streaming.jobs.aggregation`) applies them in
that order, in one keyed step with the activation-event join.

Outputs: ``checked_events`` (every line, checked), ``filtered_events`` (the seed's
intermediate topic: valid events, stripped, insert-only), ``corrupt_events`` and
``progress_events`` (records read, corrupt, late, the latest event time).
"""

from __future__ import annotations

from typing import Any

from streaming import parse
from streaming.jobs import Sink
from streaming.plan import StreamPlan
from streaming.sources import SourceTables


def checked(t_env: Any, source: SourceTables, plan: StreamPlan) -> str:
    """Every event line, checked; a valid line's text is dropped (only dead letters need it)."""
    return parse.checked_query(t_env, "events", source.events, plan.segment_fields,
                               valid_lines=False)  # fmt: skip


def build(t_env: Any, source: SourceTables, sink: Sink, plan: StreamPlan) -> None:
    sink("checked_events", checked(t_env, source, plan), changelog=False)
    segs = [f"seg_{i}" for i in range(len(plan.segment_fields))]
    columns = ["user_id", "event_type", "ts", "`value`", *segs]
    sink("filtered_events", parse.valid_query("checked_events", columns), changelog=False,
         one_reader=True)  # fmt: skip
    sink("corrupt_events", parse.corrupt_query("checked_events", "events"), changelog=False)
    sink("progress_events", parse.progress_query("checked_events", "events"))
