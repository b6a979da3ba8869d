"""Stored risk and survival assessments (the patient record's timeline) and signed reports.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

ID = sa.String(length=36)
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add `assessments` (a risk or survival result of a stored patient: model, version,
    input sha256 and a summary without PHI) and `signed_reports` (the sha256 of a finding's
    report PDF with the clinician who signed it, their verdict and when)."""
    op.create_table(
        "assessments",
        sa.Column("id", ID, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.CheckConstraint("kind IN ('risk', 'survival')", name=op.f("ck_assessments_kind")),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_assessments_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assessments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
    )
    op.create_index(op.f("ix_assessments_patient_id"), "assessments", ["patient_id"], unique=False)
    op.create_table(
        "signed_reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("prediction_id", ID, nullable=False),
        sa.Column("reviewer_id", ID, nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("signed_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_signed_reports_prediction_id_predictions"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["users.id"], name=op.f("fk_signed_reports_reviewer_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signed_reports")),
    )
    op.create_index(
        op.f("ix_signed_reports_prediction_id"), "signed_reports", ["prediction_id"], unique=False
    )


def downgrade() -> None:
    """Drop the two tables."""
    op.drop_index(op.f("ix_signed_reports_prediction_id"), table_name="signed_reports")
    op.drop_table("signed_reports")
    op.drop_index(op.f("ix_assessments_patient_id"), table_name="assessments")
    op.drop_table("assessments")
