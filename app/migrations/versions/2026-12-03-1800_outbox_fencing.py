"""outbox fencing: a claim generation, and when a send was handed to the carrier

Revision ID: c1a2b3c4d5e6
Revises: b0c0d0e0f507
Create Date: 2026-12-03 18:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import app.core.db  # noqa: F401

revision: str = "c1a2b3c4d5e6"
down_revision: str | None = "b0c0d0e0f507"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claim_token", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("send_started_at", app.core.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_column("send_started_at")
        batch_op.drop_column("claim_token")
