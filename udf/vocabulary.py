"""The platform's fixed words and numbers, in one place that imports nothing.

Every front door (the CLI, the pipeline specs, the metadata models, the plugin, the
workload generator) takes these from here, so starting ``udf`` imports neither SQLAlchemy
nor pydantic to list them, and a new metric type or run state is added once.

- ``METRIC_TYPES``: the kinds of batch metric (one pipeline, one DAG each);
- ``RUN_STATES``: the lifecycle of a metric-day (docs/framework.md §3);
- ``DEFAULT_WINDOW_DAYS`` and ``DEFAULT_SPAM_CAP``: the contract's aggregation window ``W``
  and hourly cap ``X`` when settings say nothing (docs/contract.md §3).
"""

from __future__ import annotations

from typing import Literal, get_args

MetricType = Literal["aggregated", "calendar_day", "days_in", "custom"]
METRIC_TYPES: tuple[str, ...] = get_args(MetricType)

RUN_STATES: tuple[str, ...] = (
    "waiting_on_source",
    "queued",
    "in_progress",
    "done",
    "failed",
    "skipped",
    "backfill_queued",
    # Nothing to compute: no experiment selects the metric, or none selecting it runs yet.
    "not_selected",
)

DEFAULT_WINDOW_DAYS = 3
DEFAULT_SPAM_CAP = 1000
