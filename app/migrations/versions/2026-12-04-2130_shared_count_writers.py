"""shared count writers: each process's committed writes of shared counts

A reader of the shared send counts adds what its own process has counted and not
written yet. Without knowing which writes its read included, a write that committed
during the read was missed (a send let through over its limit) or, read the other way,
counted twice. Each writer now records how many writes it has committed, in the same
transaction as the counts; a reader reads that number in the same statement as the
counts.

Revision ID: 3d7e2a9c5f10
Revises: 8e3f0a6c2d71
Create Date: 2026-12-04 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.db

revision: str = "3d7e2a9c5f10"
down_revision: str | None = "8e3f0a6c2d71"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "shared_count_writers",
        sa.Column("writer", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("writes", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("writer"),
    )
    with op.batch_alter_table("shared_count_writers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shared_count_writers_seen_at"), ["seen_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("shared_count_writers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shared_count_writers_seen_at"))
    op.drop_table("shared_count_writers")
