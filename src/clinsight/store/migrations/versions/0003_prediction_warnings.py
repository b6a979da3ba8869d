"""Predictions keep the warnings raised about the input (e.g. a DICOM of another body part).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `predictions.warnings` (a JSON list, empty for the rows already there)."""
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    """Drop `predictions.warnings`."""
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("warnings")
