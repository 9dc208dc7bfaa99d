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

# The params key that marks a metric the platform registered for an event type.
DEFAULT_MARK = "default"


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
    alerts: dict[str, Any] | None = None


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
    alert: dict[str, Any] | None = None

    @property
    def is_default(self) -> bool:
        """Registered by the platform for an event type (the contract §3), not configured:
        computed for every experiment, where a configured metric is computed for the
        experiments selecting it."""
        return self.source_file is None and bool(self.params.get(DEFAULT_MARK))


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
    alert_event_id: int | None = None


@dataclass(frozen=True, order=True)
class AlertKey:
    """One watched comparison: a treatment group's metric in one period and segment value.

    ``segment`` is ``""`` for the whole group (then ``segment_value`` is ``""`` too).
    """

    experiment: str
    group: str
    metric: str
    period_start: int
    segment: str = ""
    segment_value: str = ""


@dataclass(frozen=True)
class Findings:
    """What one look at a comparison found: the always-valid test's numbers and verdict.

    ``day`` and ``units`` (users in both groups) order the looks; ``moved`` is
    ``decrease``/``increase`` when the test rejects no change, else ``""``; ``status`` is
    the comparison's result code label (``""`` when fine).
    """

    day: date
    units: int
    method: str
    alpha: float
    moved: str = ""
    p_value: float | None = None
    lift_abs: float | None = None
    lift_rel: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    status: str = ""


@dataclass(frozen=True)
class AlertLook:
    """A look to record: ``state`` is where it puts the comparison (``ok``/``alerting``), or
    None when it allows no inference (the recorded state is kept)."""

    key: AlertKey
    state: str | None
    found: Findings


@dataclass(frozen=True)
class AlertStateInfo:
    key: AlertKey
    state: str
    changes: int
    looks: int
    found: Findings
    changed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class AlertChange:
    """One change of state (an ``alert_events`` row): what its messages announce."""

    id: int
    key: AlertKey
    from_state: str
    to_state: str
    at: datetime
    found: Findings


@dataclass(frozen=True)
class Outgoing:
    """A message to queue with a change: ``kind`` says how it travels (email, webhook)."""

    recipient: str
    kind: str
    subject: str
    body: str


@dataclass(frozen=True)
class ValidationReportInfo:
    """A stored validation report (``report`` is the whole report, as JSON)."""

    id: int
    day: date
    passed: bool
    violations: int
    threshold: float
    max_difference: float
    report: dict[str, Any]
    created_at: datetime
