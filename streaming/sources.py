"""Where the pipeline's input comes from, behind one small interface.

A source registers three tables in a table environment (:class:`SourceTables`): the raw
lines of each topic (``line``) and the period versions of the recently-ramped-groups
snapshot. The jobs only see these names; the pipeline's source is
:class:`streaming.source.UnifiedSource` (the archive's feed, then a live tail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class SourceTables:
    events: str
    activations: str
    periods: str  # PERIOD_VERSIONS: the snapshot's pieces of periods (streaming.snapshot)


PERIOD_VERSIONS = (
    "experiment STRING, grp STRING, period_start BIGINT, interval_start BIGINT, "
    "period_end BIGINT, lo BIGINT, hi BIGINT, version BIGINT, alive BOOLEAN"
)


class Source(Protocol):
    def register(self, t_env: Any) -> SourceTables: ...
