"""Clinicians' accept / reject of treatment suggestions (`recommendation_feedback`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLE = "recommendation_feedback"


def upgrade() -> None:
    """Create `recommendation_feedback` (person, drug, decision, encrypted reason, model,
    user, time)."""
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("drug", sa.String(length=128), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason_ct", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("decision IN ('accept', 'reject')", name=op.f(f"ck_{TABLE}_decision")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{TABLE}_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(op.f(f"ix_{TABLE}_person_id"), TABLE, ["person_id"], unique=False)


def downgrade() -> None:
    """Drop `recommendation_feedback`."""
    op.drop_index(op.f(f"ix_{TABLE}_person_id"), table_name=TABLE)
    op.drop_table(TABLE)
