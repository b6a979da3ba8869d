"""Segmentations: a model's mask of a study, its areas, verdict and review.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `segmentations` (mask PNG and DICOM SEG encrypted)."""
    op.create_table(
        "segmentations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("areas_px", sa.JSON(), nullable=False),
        sa.Column("areas_mm2", sa.JSON(), nullable=False),
        sa.Column("spacing_mm", sa.JSON(), nullable=True),
        sa.Column("intended_use", sa.String(length=16), nullable=False),
        sa.Column("intended_use_reasons", sa.JSON(), nullable=False),
        sa.Column("mask_png_ct", sa.Text(), nullable=True),
        sa.Column("dicom_seg_ct", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("review", sa.String(length=16), nullable=True),
        sa.Column("reviewer_id", sa.String(length=36), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("review IN ('agree', 'disagree')", name=op.f("ck_segmentations_review")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_segmentations_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_segmentations_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["users.id"], name=op.f("fk_segmentations_reviewer_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segmentations")),
    )
    op.create_index(op.f("ix_segmentations_study_id"), "segmentations", ["study_id"], unique=False)


def downgrade() -> None:
    """Drop `segmentations`."""
    op.drop_index(op.f("ix_segmentations_study_id"), table_name="segmentations")
    op.drop_table("segmentations")
