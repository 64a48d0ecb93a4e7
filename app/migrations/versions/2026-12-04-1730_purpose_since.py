"""When a number was first verified for each purpose, kept from then on.

A data subject sees the purposes their number is held for and when each began; the
registry kept only the latest verification. For rows that exist the start is not known
and stays NULL (shown as unknown), rather than a guess.

Revision ID: 8e3f0a6c2d71
Revises: 5b2c8e4d1a90
Create Date: 2026-12-04 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.core.db

revision: str = "8e3f0a6c2d71"
down_revision: str | None = "5b2c8e4d1a90"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "subscriber_purposes",
        sa.Column("since", app.core.db.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("subscriber_purposes", "since")
