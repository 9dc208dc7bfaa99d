"""The initial metadata schema: experiments, catalog, run lifecycle, leases, notifications.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00

Self-contained on purpose (no imports from models.py): a migration must keep creating
the same schema after the models have moved on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
RUN_STATES = (
    "waiting_on_source",
    "queued",
    "in_progress",
    "done",
    "failed",
    "skipped",
    "backfill_queued",
)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    kind = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    return sa.Column(name, kind, nullable=nullable)


def _id(table: str) -> tuple[sa.Column, sa.PrimaryKeyConstraint]:
    return sa.Column("id", sa.Integer(), nullable=False), sa.PrimaryKeyConstraint(
        "id", name=f"pk_{table}"
    )


def _in(values: Sequence[str]) -> str:
    return "state IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "experiments",
        *_id("experiments"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("name", name="uq_experiments_name"),
        **MYSQL,
    )
    op.create_table(
        "experiment_groups",
        *_id("experiment_groups"),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("is_control", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name="fk_experiment_groups_experiment_id",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "experiment_id", "name", name="uq_experiment_groups_experiment_id_name"
        ),
        **MYSQL,
    )
    op.create_table(
        "ramps",
        *_id("ramps"),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("ramp_ts", sa.BigInteger(), nullable=False),
        sa.Column("allocation", sa.Double(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["group_id"], ["experiment_groups.id"], name="fk_ramps_group_id", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("group_id", "ramp_ts", name="uq_ramps_group_id_ramp_ts"),
        **MYSQL,
    )
    op.create_table(
        "metric_definitions",
        *_id("metric_definitions"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("metric_type", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("sla_hours", sa.Double(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source_file", sa.String(1024), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("name", name="uq_metric_definitions_name"),
        **MYSQL,
    )
    op.create_table(
        "metric_owners",
        *_id("metric_owners"),
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.ForeignKeyConstraint(
            ["metric_id"],
            ["metric_definitions.id"],
            name="fk_metric_owners_metric_id",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("metric_id", "email", name="uq_metric_owners_metric_id_email"),
        **MYSQL,
    )
    op.create_table(
        "segments",
        *_id("segments"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("field", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("name", name="uq_segments_name"),
        **MYSQL,
    )
    op.create_table(
        "experiment_metrics",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name="fk_experiment_metrics_experiment_id",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["metric_id"],
            ["metric_definitions.id"],
            name="fk_experiment_metrics_metric_id",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "metric_id", name="pk_experiment_metrics"),
        **MYSQL,
    )
    op.create_index("ix_experiment_metrics_metric_id", "experiment_metrics", ["metric_id"])
    op.create_table(
        "experiment_segments",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name="fk_experiment_segments_experiment_id",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name="fk_experiment_segments_segment_id",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "segment_id", name="pk_experiment_segments"),
        **MYSQL,
    )
    op.create_index("ix_experiment_segments_segment_id", "experiment_segments", ["segment_id"])
    op.create_table(
        "metric_runs",
        *_id("metric_runs"),
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("metric_type", sa.String(32), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("dag_run_id", sa.String(250), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["metric_id"], ["metric_definitions.id"], name="fk_metric_runs_metric_id"
        ),
        sa.UniqueConstraint("metric_id", "ds", "scope", name="uq_metric_runs_metric_id_ds_scope"),
        sa.CheckConstraint(_in(RUN_STATES), name="ck_metric_runs_state"),
        **MYSQL,
    )
    op.create_index("ix_metric_runs_state_ds", "metric_runs", ["state", "ds"])
    op.create_table(
        "metric_run_events",
        *_id("metric_run_events"),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _ts("at"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["metric_runs.id"], name="fk_metric_run_events_run_id", ondelete="CASCADE"
        ),
        **MYSQL,
    )
    op.create_index("ix_metric_run_events_run_id", "metric_run_events", ["run_id"])
    op.create_table(
        "leases",
        *_id("leases"),
        sa.Column("lease_key", sa.String(255), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        _ts("acquired_at"),
        _ts("heartbeat_at"),
        _ts("expires_at"),
        sa.UniqueConstraint("lease_key", name="uq_leases_lease_key"),
        **MYSQL,
    )
    op.create_index("ix_leases_expires_at", "leases", ["expires_at"])
    op.create_table(
        "notifications",
        *_id("notifications"),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("run_ids", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("sent_at", nullable=True),
        sa.CheckConstraint(_in(("pending", "sent", "failed")), name="ck_notifications_state"),
        **MYSQL,
    )
    op.create_index("ix_notifications_state", "notifications", ["state"])
    op.create_index("ix_notifications_recipient_kind", "notifications", ["recipient", "kind"])


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping an index first fails on MySQL when a
    # foreign key relies on it.
    for table in (
        "notifications",
        "leases",
        "metric_run_events",
        "metric_runs",
        "experiment_segments",
        "experiment_metrics",
        "segments",
        "metric_owners",
        "metric_definitions",
        "ramps",
        "experiment_groups",
        "experiments",
    ):
        op.drop_table(table)
