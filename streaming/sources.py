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
    periods: str  # experiment, grp, period_start, period_end, version, alive


class Source(Protocol):
    def register(self, t_env: Any) -> SourceTables: ...
