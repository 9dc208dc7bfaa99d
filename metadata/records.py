"""The plain, frozen values the metadata store hands out and takes in.

Callers (the CLI, the Airflow framework, the engines) never see ORM objects: these records
are detached, frozen (their fields cannot be reassigned) and safe to pass between threads
and processes. They are not all hashable: a :class:`MetricInfo` (its ``params``), an
:class:`ExperimentInfo` with ``analysis`` settings and anything containing them hold dicts
and raise ``TypeError`` when hashed, so key them by name instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from metadata.periods import Period, aggregation_periods


@dataclass(frozen=True)
class RampRow:
    """One line of a ramps CSV: ``experiment,group,ramp_ts,allocation``."""

    experiment: str
    group: str
    ramp_ts: int
    allocation: float


@dataclass(frozen=True)
class ImportSummary:
    experiments: int
    groups: int
    experiments_added: int
    groups_added: int
    ramps_added: int
    ramps_updated: int
    ramps_unchanged: int
    without_control: tuple[str, ...] = ()  # experiments of the import with no control group

    @property
    def changed(self) -> bool:
        return bool(
            self.experiments_added or self.groups_added or self.ramps_added or self.ramps_updated
        )


@dataclass(frozen=True)
class RampInfo:
    ramp_ts: int
    allocation: float


@dataclass(frozen=True)
class GroupInfo:
    name: str
    is_control: bool
    ramps: tuple[RampInfo, ...]

    def periods(self, window: int) -> list[Period]:
        """The aggregation periods this group's ramps imply for a window of ``window`` ms."""
        return aggregation_periods((r.ramp_ts for r in self.ramps), window)


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    description: str
    groups: tuple[GroupInfo, ...]
    metrics: tuple[str, ...]
    segments: tuple[str, ...]
    analysis: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MetricInfo:
    name: str
    metric_type: str
    params: dict[str, Any]
    description: str
    owners: tuple[str, ...]
    sla_hours: float
    sources: tuple[str, ...]
    segments: tuple[str, ...]
    enabled: bool
    source_file: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SegmentInfo:
    name: str
    field: str
    description: str


@dataclass(frozen=True)
class CatalogSummary:
    metrics_added: int = 0
    metrics_updated: int = 0
    metrics_unchanged: int = 0
    metrics_disabled: int = 0
    segments_added: int = 0
    segments_updated: int = 0
    segments_unchanged: int = 0
    segments_removed: int = 0
    experiments_added: int = 0
    selections_changed: int = 0

    @property
    def changed(self) -> bool:
        return any(
            (
                self.metrics_added,
                self.metrics_updated,
                self.metrics_disabled,
                self.segments_added,
                self.segments_updated,
                self.segments_removed,
                self.experiments_added,
                self.selections_changed,
            )
        )


@dataclass(frozen=True)
class RunEvent:
    from_state: str | None
    to_state: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class RunInfo:
    id: int
    metric: str
    metric_type: str
    ds: date
    scope: str
    state: str
    attempt: int
    reason: str | None
    dag_run_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    events: tuple[RunEvent, ...] = field(default=())


@dataclass(frozen=True)
class LeaseInfo:
    key: str
    holder: str
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class NotificationInfo:
    id: int
    recipient: str
    kind: str
    subject: str
    body: str
    run_ids: tuple[int, ...]
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
