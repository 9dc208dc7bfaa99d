"""A metric-day may be ``not_selected``: nothing to compute, so no Spark time and no email.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 00:00:00

Only the check constraint on ``metric_runs.state`` changes. Self-contained on purpose, like
0001: the state lists are spelled out here, not imported. SQLite rebuilds the table
(batch mode); the servers drop and re-create the constraint. A downgrade turns
``not_selected`` rows back into ``waiting_on_source``, what the older code recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001 created the constraint under the naming convention applied twice; the new one
# takes the name the models give it.
OLD_NAME = "ck_metric_runs_ck_metric_runs_state"
NAME = "ck_metric_runs_state"
BEFORE = (
    "waiting_on_source",
    "queued",
    "in_progress",
    "done",
    "failed",
    "skipped",
    "backfill_queued",
)
AFTER = (*BEFORE, "not_selected")


def _in(values: Sequence[str]) -> str:
    return "state IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _replace(old: str, new: str, states: Sequence[str]) -> None:
    with op.batch_alter_table("metric_runs") as batch:
        batch.drop_constraint(op.f(old), type_="check")
        batch.create_check_constraint(op.f(new), _in(states))


def upgrade() -> None:
    _replace(OLD_NAME, NAME, AFTER)


def downgrade() -> None:
    runs = sa.table("metric_runs", sa.column("state", sa.String(32)))
    op.execute(
        runs.update().where(runs.c.state == "not_selected").values(state="waiting_on_source")
    )
    _replace(NAME, OLD_NAME, BEFORE)
