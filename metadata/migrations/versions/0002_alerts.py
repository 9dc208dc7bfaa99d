"""Real-time alerts: alert rules on metrics and experiments, alert states and their changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01 00:00:00

Adds ``metric_definitions.alert`` and ``experiments.alerts`` (the catalog's alert
configuration, JSON), the ``alert_states`` and ``alert_events`` tables, and
``notifications.alert_event_id`` linking an alert's messages to the change they announce.
Self-contained on purpose (no imports from models.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _ts(name: str, nullable: bool = False) -> sa.Column:
    kind = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    return sa.Column(name, kind, nullable=nullable)


def _look() -> list[sa.Column]:
    """The columns of one look, shared by a state (its latest) and an event (the deciding one)."""
    return [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("alpha", sa.Double(), nullable=False),
        sa.Column("moved", sa.String(16), nullable=False),
        sa.Column("p_value", sa.Double(), nullable=True),
        sa.Column("lift_abs", sa.Double(), nullable=True),
        sa.Column("lift_rel", sa.Double(), nullable=True),
        sa.Column("ci_low", sa.Double(), nullable=True),
        sa.Column("ci_high", sa.Double(), nullable=True),
    ]


def upgrade() -> None:
    op.add_column("experiments", sa.Column("alerts", sa.JSON(), nullable=True))
    op.add_column("metric_definitions", sa.Column("alert", sa.JSON(), nullable=True))
    op.create_table(
        "alert_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("segment", sa.String(128), nullable=False),
        sa.Column("segment_value", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("looks", sa.Integer(), nullable=False),
        *_look(),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("changed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_states"),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["experiment_groups.id"],
            name="fk_alert_states_group_id",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["metric_id"],
            ["metric_definitions.id"],
            name="fk_alert_states_metric_id",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "group_id",
            "metric_id",
            "period_start",
            "segment",
            "segment_value",
            name="uq_alert_states_key",
        ),
        sa.CheckConstraint("state IN ('ok', 'alerting')", name=op.f("ck_alert_states_state")),
        **MYSQL,
    )
    op.create_index("ix_alert_states_metric_id", "alert_states", ["metric_id"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        _ts("at"),
        *_look(),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
        sa.ForeignKeyConstraint(
            ["state_id"], ["alert_states.id"], name="fk_alert_events_state_id", ondelete="CASCADE"
        ),
        **MYSQL,
    )
    op.create_index("ix_alert_events_state_id", "alert_events", ["state_id"])
    # SQLite cannot add a foreign key to an existing table: batch mode rebuilds it there
    # (keeping the named check constraint), and is a plain ALTER elsewhere.
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("alert_event_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_notifications_alert_event_id",
            "alert_events",
            ["alert_event_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_notifications_alert_event_id", ["alert_event_id"])


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("fk_notifications_alert_event_id", type_="foreignkey")
        batch.drop_index("ix_notifications_alert_event_id")
        batch.drop_column("alert_event_id")
    op.drop_table("alert_events")
    op.drop_table("alert_states")
    op.drop_column("metric_definitions", "alert")
    op.drop_column("experiments", "alerts")
