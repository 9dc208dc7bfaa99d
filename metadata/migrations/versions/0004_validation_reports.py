"""The daily streaming-vs-batch validation's reports (``udf validate``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 00:00:00

Adds the ``validation_reports`` table. Self-contained on purpose (no imports from models.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def upgrade() -> None:
    created = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    op.create_table(
        "validation_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("violations", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("max_difference", sa.Double(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", created, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_validation_reports"),
        **MYSQL,
    )
    op.create_index("ix_validation_reports_day", "validation_reports", ["day"])


def downgrade() -> None:
    op.drop_index("ix_validation_reports_day", table_name="validation_reports")
    op.drop_table("validation_reports")
