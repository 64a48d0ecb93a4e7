"""A closed subject request is kept from when it was answered

The request register is the proof that a data subject's request was answered, kept
``subject_request_retention_days`` (three years). The purge counted from when a request
was received, so a request answered late was deleted that much sooner after its answer.
It now counts from ``done_at``, walking a partial index of closed requests.

Revision ID: d4f6a8c0e2b5
Revises: c3e5a7b9d1f4
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "d4f6a8c0e2b5"
down_revision: str | None = "c3e5a7b9d1f4"
branch_labels: str | None = None
depends_on: str | None = None

CONDITION = "status != 'open'"


def upgrade() -> None:
    op.create_index(
        "ix_subject_requests_done",
        "subject_requests",
        ["done_at", "id"],
        sqlite_where=sa.text(CONDITION),
        postgresql_where=sa.text(CONDITION),
    )


def downgrade() -> None:
    op.drop_index("ix_subject_requests_done", table_name="subject_requests")
