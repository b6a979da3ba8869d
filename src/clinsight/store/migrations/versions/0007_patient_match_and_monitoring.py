"""Studies keep a confirmed patient mismatch; predictions keep the input's mean intensity.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `studies.patient_mismatch` (the fields a clinician confirmed despite the DICOM
    header disagreeing with the chart; null when none) and `predictions.input_mean_intensity`
    (null for old rows)."""
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("patient_mismatch", sa.JSON(), nullable=True))
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("input_mean_intensity", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("input_mean_intensity")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("patient_mismatch")
