"""data subjects: their sessions and their requests

Revision ID: 5b2c8e4d1a90
Revises: 5c0a7e3d9b14
Create Date: 2026-12-04 16:45:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import app.core.db  # noqa: F401

revision: str = "5b2c8e4d1a90"
down_revision: str | None = "5c0a7e3d9b14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subject_sessions",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("subscriber_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("verification_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        sa.UniqueConstraint("verification_id"),
    )
    with op.batch_alter_table("subject_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subject_sessions_subscriber_id"), ["subscriber_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subject_sessions_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "subject_requests",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("subscriber_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("received_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("done_at", app.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("subject_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subject_requests_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index("ix_subject_requests_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_subject_requests_subscriber_id"), ["subscriber_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("subject_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subject_requests_subscriber_id"))
        batch_op.drop_index("ix_subject_requests_status_due")
        batch_op.drop_index(batch_op.f("ix_subject_requests_received_at"))
    op.drop_table("subject_requests")
    with op.batch_alter_table("subject_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subject_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_subject_sessions_subscriber_id"))
    op.drop_table("subject_sessions")
