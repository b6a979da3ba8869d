"""Feedback keeps one current verdict per clinician and prediction, earlier ones as history.

`feedback.superseded_at` marks a replaced version; a partial unique index allows one
current row (superseded_at null) per (prediction, clinician). Rows already there are
migrated: in each group the newest stays current, each older one is superseded at the
time the next one was made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CURRENT = sa.text("superseded_at IS NULL")
# The next version of the same clinician's verdict: made later, or at the same instant
# with a greater id (a stable order for ties).
SUPERSEDE = """
UPDATE feedback SET superseded_at = (
    SELECT MIN(later.created_at) FROM feedback AS later
    WHERE later.prediction_id = feedback.prediction_id
      AND later.user_id = feedback.user_id
      AND (later.created_at > feedback.created_at
           OR (later.created_at = feedback.created_at AND later.id > feedback.id))
)
"""


def upgrade() -> None:
    """Add `feedback.superseded_at`, supersede all but the newest verdict of each clinician
    on each prediction, and index the current ones as unique."""
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.text(SUPERSEDE))
    op.create_index(
        "uq_feedback_current",
        "feedback",
        ["prediction_id", "user_id"],
        unique=True,
        sqlite_where=CURRENT,
        postgresql_where=CURRENT,
    )


def downgrade() -> None:
    """Drop the index and `feedback.superseded_at` (every version becomes a verdict again)."""
    op.drop_index("uq_feedback_current", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("superseded_at")
