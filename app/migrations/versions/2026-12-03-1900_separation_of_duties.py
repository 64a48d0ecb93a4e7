"""separation of duties: role grants under four eyes, invitations, login throttles,
break-glass expiry, and the stop of provision a disclosure overrode

Revision ID: d7e1a5f0c2b9
Revises: ef1b94f5afb8
Create Date: 2026-12-03 19:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import app.core.db  # noqa: F401

revision: str = "d7e1a5f0c2b9"
down_revision: str | None = "ef1b94f5afb8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ip_bucket", sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
        sa.Column("source_bucket", sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
        sa.Column("staff_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("staff_login_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_login_attempts_at"), ["at"], unique=False)
        batch_op.create_index("ix_staff_login_attempts_ip", ["ip_bucket", "at"], unique=False)
        batch_op.create_index(
            "ix_staff_login_attempts_source", ["source_bucket", "at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_staff_login_attempts_staff_id"), ["staff_id"], unique=False
        )

    op.create_table(
        "staff_invitations",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("staff_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("created_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("password_set_at", app.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("redeemed_at", app.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("redeemed_ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("revoked_at", app.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("staff_invitations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_invitations_staff_id"), ["staff_id"], unique=False
        )

    op.create_table(
        "staff_role_grants",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("staff_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("old_role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("proposed_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("proposed_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("decided_at", app.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("staff_role_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_role_grants_staff_id"), ["staff_id"], unique=False
        )
        batch_op.create_index(
            "ix_staff_role_grants_status", ["status", "proposed_at"], unique=False
        )

    # Plain ALTER TABLE (no batch copy): the ledger's append-only triggers stay in place.
    op.add_column("disclosure_requests", sa.Column("stop_overridden", sa.Text(), nullable=True))
    op.add_column("ledger_entries", sa.Column("stop_overridden", sa.Text(), nullable=True))

    with op.batch_alter_table("staff_accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("activation_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("expires_at", app.core.db.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("staff_permission_history", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confirmed_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("staff_permission_history", schema=None) as batch_op:
        batch_op.drop_column("confirmed_by")

    with op.batch_alter_table("staff_accounts", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("activation_pending")

    op.drop_column("ledger_entries", "stop_overridden")
    op.drop_column("disclosure_requests", "stop_overridden")

    with op.batch_alter_table("staff_role_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_role_grants_status")
        batch_op.drop_index(batch_op.f("ix_staff_role_grants_staff_id"))

    op.drop_table("staff_role_grants")
    with op.batch_alter_table("staff_invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_invitations_staff_id"))

    op.drop_table("staff_invitations")
    with op.batch_alter_table("staff_login_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_login_attempts_staff_id"))
        batch_op.drop_index("ix_staff_login_attempts_source")
        batch_op.drop_index("ix_staff_login_attempts_ip")
        batch_op.drop_index(batch_op.f("ix_staff_login_attempts_at"))

    op.drop_table("staff_login_attempts")
