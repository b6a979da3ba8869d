"""Stored progression assessments (`assessments.kind` admits ``progression``) and the
patient a recommendation decision was made on (`recommendation_feedback.patient_id`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Let `assessments` keep a progression (deterioration) assessment beside risk and
    survival ones, and `recommendation_feedback` the Clinsight patient a decision was made
    on (null for decisions through the API by OMOP person), so the patient record's
    timeline can show both."""
    with op.batch_alter_table("assessments") as batch:
        batch.drop_constraint(op.f("ck_assessments_kind"), type_="check")
        batch.create_check_constraint("kind", "kind IN ('risk', 'survival', 'progression')")
    with op.batch_alter_table("recommendation_feedback") as batch:
        batch.add_column(sa.Column("patient_id", sa.String(length=36), nullable=True))
        batch.create_index(
            op.f("ix_recommendation_feedback_patient_id"), ["patient_id"], unique=False
        )


def downgrade() -> None:
    """Remove the progression assessments and the decisions' patient again."""
    with op.batch_alter_table("recommendation_feedback") as batch:
        batch.drop_index(op.f("ix_recommendation_feedback_patient_id"))
        batch.drop_column("patient_id")
    op.execute("DELETE FROM assessments WHERE kind = 'progression'")
    with op.batch_alter_table("assessments") as batch:
        batch.drop_constraint(op.f("ck_assessments_kind"), type_="check")
        batch.create_check_constraint("kind", "kind IN ('risk', 'survival')")
