"""Predictions keep the intended-use gate's verdict and its reasons.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `predictions.intended_use` (null for old rows) and `predictions.intended_use_reasons`
    (a JSON list, empty for old rows)."""
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("intended_use", sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column("intended_use_reasons", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("intended_use_reasons")
        batch.drop_column("intended_use")
