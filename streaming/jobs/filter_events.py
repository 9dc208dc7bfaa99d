"""Filter events: validate, strip, de-duplicate and cap (the seed's filter-events job).

* **Validate**: :mod:`streaming.parse` (the importer's rules in SQL); corrupt lines go to
  ``corrupt_events`` (dead-lettered by the pipeline) and are counted.
* **Strip**: only ``user_id, event_type, ts, value`` and the segment fields the plan breaks
  groups down by are kept. Every event type is kept: each one is a default metric.
* **De-duplicate** (docs/metrics.md §1): equal ``(user_id, event_type, ts)`` are one event,
  the first to arrive wins. Flink SQL's first-row de-duplication on processing time is
  insert-only when planned without mini-batching (:func:`~streaming.jobs.without_mini_batch`),
  which keeps the cap below cheap (an appending Top-N); the feed hands each archive file's lines to
  one reader in file order, so the first to arrive is the first in the file.
* **Spam cap**: of a user's events in one clock hour, ordered by ``(ts, event_type)``, only
  the first ``X`` stay: a Top-N per (user, hour). It is a regular Top-N, not a window (a
  window would only emit once its hour closes); a late event that displaces one already
  counted retracts it, and everything downstream corrects itself through the retraction.

Outputs: ``checked_events`` (every line, checked), ``filtered_events`` (the seed's
intermediate topic), ``corrupt_events``, ``progress_events`` (records read, corrupt, late,
the latest event time) and ``event_types`` (every event type seen: each is a metric).
"""

from __future__ import annotations

from typing import Any

from streaming import parse
from streaming.jobs import Sink, without_mini_batch
from streaming.plan import StreamPlan
from streaming.sources import SourceTables

HOUR_MS = 3_600_000


def checked(t_env: Any, source: SourceTables, plan: StreamPlan) -> str:
    """Every event line, checked; a valid line's text is dropped (only dead letters need it)."""
    return parse.checked_query(t_env, "events", source.events, plan.segment_fields,
                               valid_lines=False)  # fmt: skip


def build(t_env: Any, source: SourceTables, sink: Sink, plan: StreamPlan) -> None:
    sink("checked_events", checked(t_env, source, plan), changelog=False)
    segs = [f"seg_{i}" for i in range(len(plan.segment_fields))]
    columns = ["user_id", "event_type", "ts", "`value`", *segs]
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW events_first AS "
        f"SELECT {', '.join(columns)}, ts / {HOUR_MS} AS ts_hour FROM ("
        "SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id, event_type, ts ORDER BY proc) AS rn "
        f"FROM ({parse.valid_query('checked_events', [*columns, 'proc'])})) WHERE rn = 1"
    )
    with without_mini_batch(t_env):  # insert-only de-duplication: the cap's Top-N appends
        sink(
            "filtered_events",
            f"SELECT {', '.join(columns)} FROM ("
            "SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id, ts_hour ORDER BY ts, event_type) "
            f"AS rc FROM events_first) WHERE rc <= {plan.spam_cap}",
        )
    sink("corrupt_events", parse.corrupt_query("checked_events", "events"), changelog=False)
    sink("progress_events", parse.progress_query("checked_events", "events"))
    sink("event_types", "SELECT event_type FROM filtered_events GROUP BY event_type")
