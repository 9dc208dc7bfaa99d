"""What the real-time health view shows: the streaming jobs on the session cluster, and
each experiment's real-time health alert state.

For each job the supervisor deployed (``stream/<mode>.job.json``, :mod:`streaming.supervisor`:
the one pipeline, or each of the jobs apart)
its health as Flink's REST API reports it now (state, age of the last completed checkpoint,
restarts, the latest exception, backpressure) and the pipeline's own progress line (records
read, corrupt, late, rows written, lag). Called per request, never at import: the streaming
modules load only when the view is opened.
"""

from __future__ import annotations

from typing import Any

from udf.errors import UdfError
from udf.home import Home


def stream_jobs(home: Home) -> list[dict[str, Any]]:
    """One row per deployed job (the one pipeline, or each of the jobs apart); ``state`` is
    ``unreachable`` when the cluster does not answer."""
    from streaming import progress
    from streaming.cluster import Cluster
    from streaming.runner import StreamState
    from streaming.supervisor import MODES, deployed, health

    jobs = []
    for mode in MODES:
        line = progress.line(progress.read(StreamState.of(home, mode).progress))
        for name, entry in deployed(home, mode).items():
            row: dict[str, Any] = {"mode": mode, "job": name, "job_id": entry["job_id"],
                                   "state": "unknown", "checkpoint_age_seconds": None,
                                   "restarts": None, "backpressure": None, "exceptions": [],
                                   "error": "", "progress": line}  # fmt: skip
            try:
                row.update(health(Cluster.of(home), row["job_id"]))
            except UdfError as exc:
                row.update(state="unreachable", error=str(exc))
            jobs.append(row)
    return jobs


def assignment_states(states: list[Any]) -> dict[str, dict[str, Any]]:
    """Each experiment's real-time health (``(real-time health)`` alert states, one per
    period; :mod:`streaming.alerts.health`), the worst of its periods: ``alerting`` with what
    failed, the always-valid SRM p-value and since when, else ``ok``."""
    from streaming.alerts.health import REALTIME_SEGMENT

    out: dict[str, dict[str, Any]] = {}
    for s in sorted(states, key=lambda s: (s.state == "alerting", s.key.period_start)):
        if s.key.segment != REALTIME_SEGMENT:
            continue
        found = s.found
        out[s.key.experiment] = {
            "state": s.state,
            "status": found.status,
            "p_value": found.p_value,
            "units": found.units,
            "since": s.changed_at.strftime("%Y-%m-%d %H:%M:%S") if s.changed_at else "",
        }
    return out
