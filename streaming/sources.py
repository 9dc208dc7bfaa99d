"""Where the pipeline's input comes from, behind one small interface.

A source registers three tables in a table environment (:class:`SourceTables`): the raw
lines of each topic (one column, ``line``) and the period versions of the
recently-ramped-groups snapshot. The jobs
only see these names, so another source (the archive plus a live Kafka tail, issue 13) can
replace :class:`ArchiveFeedSource` without touching them.

:class:`ArchiveFeedSource` reads the feed (:mod:`streaming.feed`) with Flink's filesystem
connector as raw lines, so that corrupt lines are counted and dead-lettered by the
pipeline's own checks (:mod:`streaming.parse`) instead of being dropped by a JSON format.
Bounded (a replay) it reads what the feed holds when the job starts and ends; following (a
run) it checks the folders for new files every ``monitor_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from streaming.feed import Feed
from streaming.parse import lit


@dataclass(frozen=True)
class SourceTables:
    events: str
    activations: str
    periods: str  # experiment, grp, period_start, period_end, version, alive


class Source(Protocol):
    def register(self, t_env: Any) -> SourceTables: ...


@dataclass(frozen=True)
class ArchiveFeedSource:
    feed: Feed
    periods_dir: Path
    follow: bool = False
    monitor_seconds: float = 10.0

    def _options(self, path: Path, fmt: str) -> str:
        options = {"connector": "filesystem", "path": path.absolute().as_uri(), "format": fmt}
        if self.follow:
            options["source.monitor-interval"] = f"{max(1, round(self.monitor_seconds * 1000))}ms"
        return ", ".join(f"{lit(k)} = {lit(v)}" for k, v in options.items())

    def register(self, t_env: Any) -> SourceTables:
        for topic in self.feed.topics:
            t_env.execute_sql(
                f"CREATE TEMPORARY TABLE raw_{topic} (line STRING) "
                f"WITH ({self._options(self.feed.topic_dir(topic), 'raw')})"
            )
        t_env.execute_sql(
            "CREATE TEMPORARY TABLE period_versions (experiment STRING, grp STRING, "
            "period_start BIGINT, period_end BIGINT, version BIGINT, alive BOOLEAN) "
            f"WITH ({self._options(self.periods_dir, 'json')})"
        )
        return SourceTables("raw_events", "raw_activations", "period_versions")

