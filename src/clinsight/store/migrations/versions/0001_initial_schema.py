"""Initial schema: users, patients (encrypted PHI), care team, studies, predictions,
feedback, break-glass grants, login sessions with refresh tokens, and the
append-only audit chain (triggers refuse UPDATE and DELETE on audit_log).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(length=36)
SHA256 = sa.String(length=64)
TIME = sa.DateTime(timezone=True)

PG_APPEND_ONLY = [
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
]
SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
]


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def _index(table: str, column: str) -> None:
    op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)


def upgrade() -> None:
    """Create every table, seed the audit chain head and guard audit_log."""
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", SHA256, nullable=False),
        _pk("audit_head", "id"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor_id", ID, nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("patient_id", ID, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        sa.Column("prev_hash", SHA256, nullable=False),
        sa.Column("hash", SHA256, nullable=False),
        _pk("audit_log", "seq"),
    )
    _index("audit_log", "at")
    _index("audit_log", "patient_id")
    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("failure_window_start", TIME, nullable=True),
        sa.Column("locked_until", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.CheckConstraint("role IN ('admin', 'clinician', 'auditor')", name=op.f("ck_users_role")),
        _pk("users", "id"),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "auth_sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("absolute_expires_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        _fk("auth_sessions", "user_id", "users"),
        _pk("auth_sessions", "id"),
    )
    _index("auth_sessions", "user_id")
    op.create_table(
        "patients",
        sa.Column("id", ID, nullable=False),
        sa.Column("mrn_index", SHA256, nullable=False),
        sa.Column("mrn_ct", sa.Text(), nullable=False),
        sa.Column("name_ct", sa.Text(), nullable=False),
        sa.Column("birth_date_ct", sa.Text(), nullable=False),
        sa.Column("sex_ct", sa.Text(), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        _fk("patients", "created_by", "users"),
        _pk("patients", "id"),
        sa.UniqueConstraint("mrn_index", name=op.f("uq_patients_mrn_index")),
    )
    op.create_table(
        "break_glass_grants",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("reason_ct", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        _fk("break_glass_grants", "patient_id", "patients"),
        _fk("break_glass_grants", "user_id", "users"),
        _pk("break_glass_grants", "id"),
    )
    _index("break_glass_grants", "user_id")
    op.create_table(
        "care_team",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("assigned_by", ID, nullable=True),
        sa.Column("assigned_at", TIME, nullable=False),
        _fk("care_team", "assigned_by", "users"),
        _fk("care_team", "patient_id", "patients"),
        _fk("care_team", "user_id", "users"),
        _pk("care_team", "user_id", "patient_id"),
    )
    _index("care_team", "patient_id")
    op.create_table(
        "refresh_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("token_hash", SHA256, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        _fk("refresh_tokens", "session_id", "auth_sessions"),
        _pk("refresh_tokens", "id"),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    _index("refresh_tokens", "session_id")
    op.create_table(
        "studies",
        sa.Column("id", ID, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("sha256", SHA256, nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        _fk("studies", "created_by", "users"),
        _fk("studies", "patient_id", "patients"),
        _pk("studies", "id"),
        sa.UniqueConstraint("blob_key", name=op.f("uq_studies_blob_key")),
    )
    _index("studies", "patient_id")
    op.create_table(
        "predictions",
        sa.Column("id", ID, nullable=False),
        sa.Column("study_id", ID, nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("artifact_sha256", SHA256, nullable=False),
        sa.Column("input_sha256", SHA256, nullable=False),
        sa.Column("preprocessing", sa.JSON(), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("calibrated_confidence", sa.Float(), nullable=True),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        _fk("predictions", "study_id", "studies"),
        _fk("predictions", "user_id", "users"),
        _pk("predictions", "id"),
    )
    _index("predictions", "study_id")
    op.create_table(
        "feedback",
        sa.Column("id", ID, nullable=False),
        sa.Column("prediction_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason_ct", sa.Text(), nullable=True),
        sa.Column("override_label", sa.String(length=128), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.CheckConstraint(
            "verdict IN ('agree', 'disagree', 'override')", name=op.f("ck_feedback_verdict")
        ),
        _fk("feedback", "prediction_id", "predictions"),
        _fk("feedback", "user_id", "users"),
        _pk("feedback", "id"),
    )
    _index("feedback", "prediction_id")
    op.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)").bindparams(h="0" * 64)
    )
    dialect = op.get_bind().dialect.name
    for statement in PG_APPEND_ONLY if dialect == "postgresql" else SQLITE_APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    """Drop everything this revision created."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_append_only() CASCADE")
    for table in (
        "feedback",
        "predictions",
        "studies",
        "refresh_tokens",
        "care_team",
        "break_glass_grants",
        "patients",
        "auth_sessions",
        "users",
        "audit_log",
        "audit_head",
    ):
        op.drop_table(table)
