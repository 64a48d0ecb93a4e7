"""A self-service verification is kept as briefly as an unverified one

A ``data_subject`` verification proves a number to open a session on /my/ (or to
confirm the new number of a correction), and has no use once that is done. Approved,
it was kept with every approved verification for six months, number and blind index
included, even when the number was not in the registry at all ("we hold no data about
this number") or had just been erased. An index of its own lets the purge delete it
after ``unverified_retention_hours`` (24) without walking the approved verifications
kept for their coupons.

Revision ID: c3e5a7b9d1f4
Revises: b2d4f6a8c0e3
Create Date: 2026-12-06 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "c3e5a7b9d1f4"
down_revision: str | None = "b2d4f6a8c0e3"
branch_labels: str | None = None
depends_on: str | None = None

CONDITION = "status = 'approved' AND purpose = 'data_subject'"


def upgrade() -> None:
    op.create_index(
        "ix_verifications_self_service_created",
        "verifications",
        ["created_at", "id"],
        sqlite_where=sa.text(CONDITION),
        postgresql_where=sa.text(CONDITION),
    )


def downgrade() -> None:
    op.drop_index("ix_verifications_self_service_created", table_name="verifications")
