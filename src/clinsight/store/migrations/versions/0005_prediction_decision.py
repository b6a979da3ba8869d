"""Predictions keep the decision of a binary model's band and the thresholds behind it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `predictions.decision` and `predictions.decision_thresholds` (null for old rows)."""
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("decision", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("decision_thresholds", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("decision_thresholds")
        batch.drop_column("decision")
