"""The metadata store's tables as typed SQLAlchemy declarative models.

These classes never leave :mod:`metadata.repository`: callers get frozen dataclasses.
``migrations/versions`` must create exactly these tables (a test compares them with
Alembic's ``compare_metadata`` on every supported backend), so a change here needs a
new migration.

Constraint names follow one naming convention so that migrations can drop them by name
on every backend, and every MySQL/MariaDB table uses ``utf8mb4_bin``: experiment hashes and
metric names are case-sensitive and trailing spaces matter.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from metadata.types import UTCDateTime, utcnow
from udf.vocabulary import RUN_STATES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}
MYSQL_TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

NOTIFICATION_STATES = ("pending", "sent", "failed")
ALERT_STATES = ("ok", "alerting")

NAME = 128  # experiment, group, metric and segment names (the config's Identifier limit)
SEGMENT_VALUE = 255  # a user's value of a segment field, as alert states key it


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # How comparisons are judged (udf.config.catalog.AnalysisSpec); None until configured.
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Its alerting (udf.config.alerts.ExperimentAlerts); None until configured.
    alerts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    groups: Mapped[list[ExperimentGroup]] = relationship(
        back_populates="experiment", cascade="all, delete-orphan", order_by="ExperimentGroup.name"
    )
    # Read-only views of the selection; the repository writes the association rows directly.
    metrics: Mapped[list[MetricDefinition]] = relationship(
        secondary="experiment_metrics", order_by="MetricDefinition.name", viewonly=True
    )
    segments: Mapped[list[Segment]] = relationship(
        secondary="experiment_segments", order_by="Segment.name", viewonly=True
    )


class ExperimentGroup(Base):
    __tablename__ = "experiment_groups"
    __table_args__ = (UniqueConstraint("experiment_id", "name"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME))
    is_control: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = _created()

    experiment: Mapped[Experiment] = relationship(back_populates="groups")
    ramps: Mapped[list[Ramp]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="Ramp.ramp_ts"
    )


class Ramp(Base):
    """One increase of a group's allocation; the first one is the launch."""

    __tablename__ = "ramps"
    __table_args__ = (UniqueConstraint("group_id", "ramp_ts"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("experiment_groups.id", ondelete="CASCADE"))
    ramp_ts: Mapped[int] = mapped_column(BigInteger)  # epoch milliseconds, UTC
    allocation: Mapped[float] = mapped_column(Double)  # percent of traffic
    created_at: Mapped[datetime] = _created()

    group: Mapped[ExperimentGroup] = relationship(back_populates="ramps")


class MetricDefinition(Base):
    __tablename__ = "metric_definitions"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    metric_type: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    sla_hours: Mapped[float] = mapped_column(Double)
    sources: Mapped[list[str]] = mapped_column(JSON)
    segments: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    source_file: Mapped[str | None] = mapped_column(String(1024))
    # Real-time alert rule (udf.config.alerts.AlertRule); None: not watched.
    alert: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    owners: Mapped[list[MetricOwner]] = relationship(
        cascade="all, delete-orphan", order_by="MetricOwner.email"
    )


class MetricOwner(Base):
    __tablename__ = "metric_owners"
    __table_args__ = (UniqueConstraint("metric_id", "email"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric_id: Mapped[int] = mapped_column(ForeignKey("metric_definitions.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    field: Mapped[str] = mapped_column(String(NAME))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ExperimentMetric(Base):
    """Selection of a metric for an experiment (the experiment may have no ramps yet)."""

    __tablename__ = "experiment_metrics"
    __table_args__ = (Index("ix_experiment_metrics_metric_id", "metric_id"), MYSQL_TABLE_OPTIONS)

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    metric_id: Mapped[int] = mapped_column(
        ForeignKey("metric_definitions.id", ondelete="CASCADE"), primary_key=True
    )


class ExperimentSegment(Base):
    __tablename__ = "experiment_segments"
    __table_args__ = (Index("ix_experiment_segments_segment_id", "segment_id"), MYSQL_TABLE_OPTIONS)

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )


class MetricRun(Base):
    """One metric for one metric-day (``ds``) and scope: its lifecycle state and timings.

    ``scope`` is ``''`` for the daily run over every experiment, or an experiment name for
    an on-demand run; it is part of the key so both can exist for the same day.
    """

    __tablename__ = "metric_runs"
    __table_args__ = (
        UniqueConstraint("metric_id", "ds", "scope"),
        CheckConstraint("state IN (" + ", ".join(f"'{s}'" for s in RUN_STATES) + ")", name="state"),
        Index("ix_metric_runs_state_ds", "state", "ds"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric_id: Mapped[int] = mapped_column(ForeignKey("metric_definitions.id"))
    metric_type: Mapped[str] = mapped_column(String(32))
    ds: Mapped[date] = mapped_column(Date)
    scope: Mapped[str] = mapped_column(String(NAME), default="")
    state: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    dag_run_id: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[float | None] = mapped_column(Double)

    metric: Mapped[MetricDefinition] = relationship()


class MetricRunEvent(Base):
    """One state change of a run: the history ``udf status`` and notifications read."""

    __tablename__ = "metric_run_events"
    __table_args__ = (Index("ix_metric_run_events_run_id", "run_id"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("metric_runs.id", ondelete="CASCADE"))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Lease(Base):
    """A claim that some work (e.g. ``metric:ds:scope``) is in progress, valid until it expires."""

    __tablename__ = "leases"
    __table_args__ = (Index("ix_leases_expires_at", "expires_at"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column("lease_key", String(255), unique=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in NOTIFICATION_STATES) + ")", name="state"
        ),
        Index("ix_notifications_state", "state"),
        Index("ix_notifications_recipient_kind", "recipient", "kind"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text, default="")
    run_ids: Mapped[list[int]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The alert transition this message announces (None for the owners' digests).
    alert_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_events.id", ondelete="CASCADE"), index=True
    )


class AlertState(Base):
    """The alert state of one comparison: treatment group, metric, period and segment value.

    ``state`` is ``ok`` or ``alerting``; ``changes`` counts transitions (each one an
    :class:`AlertEvent`). The other columns are the latest look: its ``day`` and ``units``
    (a look older than these is stale and ignored), the method and what it found.
    """

    __tablename__ = "alert_states"
    __table_args__ = (
        UniqueConstraint(
            "group_id",
            "metric_id",
            "period_start",
            "segment",
            "segment_value",
            name="uq_alert_states_key",  # the convention's name is too long for PostgreSQL
        ),
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in ALERT_STATES) + ")", name="state"
        ),
        Index("ix_alert_states_metric_id", "metric_id"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("experiment_groups.id", ondelete="CASCADE"))
    metric_id: Mapped[int] = mapped_column(ForeignKey("metric_definitions.id", ondelete="CASCADE"))
    period_start: Mapped[int] = mapped_column(BigInteger)
    segment: Mapped[str] = mapped_column(String(NAME))
    segment_value: Mapped[str] = mapped_column(String(SEGMENT_VALUE))
    state: Mapped[str] = mapped_column(String(16))
    changes: Mapped[int] = mapped_column(Integer)
    looks: Mapped[int] = mapped_column(Integer)
    day: Mapped[date] = mapped_column(Date)
    units: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(32))
    alpha: Mapped[float] = mapped_column(Double)
    moved: Mapped[str] = mapped_column(String(16))
    p_value: Mapped[float | None] = mapped_column(Double)
    lift_abs: Mapped[float | None] = mapped_column(Double)
    lift_rel: Mapped[float | None] = mapped_column(Double)
    ci_low: Mapped[float | None] = mapped_column(Double)
    ci_high: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    group: Mapped[ExperimentGroup] = relationship()
    metric: Mapped[MetricDefinition] = relationship()


class AlertEvent(Base):
    """One change of an alert state, with the look that decided it; its messages point here."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_state_id", "state_id"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_id: Mapped[int] = mapped_column(ForeignKey("alert_states.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date)
    units: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(32))
    alpha: Mapped[float] = mapped_column(Double)
    moved: Mapped[str] = mapped_column(String(16))
    p_value: Mapped[float | None] = mapped_column(Double)
    lift_abs: Mapped[float | None] = mapped_column(Double)
    lift_rel: Mapped[float | None] = mapped_column(Double)
    ci_low: Mapped[float | None] = mapped_column(Double)
    ci_high: Mapped[float | None] = mapped_column(Double)


class ValidationReport(Base):
    """One run of the daily streaming-vs-batch validation (``udf validate``) and its findings.

    ``report`` holds the whole report as JSON (every check, the listed violations); the
    columns beside it are what ``udf status --validation`` lists without parsing it.
    """

    __tablename__ = "validation_reports"
    __table_args__ = (Index("ix_validation_reports_day", "day"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    passed: Mapped[bool] = mapped_column(Boolean)
    violations: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float] = mapped_column(Double)
    max_difference: Mapped[float] = mapped_column(Double)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = _created()
