"""The events of verifications and SMS are purged with those records

Audit events were never purged: at 1,000 starts a minute the table grew by about 950
million rows (0.63 GB a day) a year, nearly all of them the events of verifications and
their SMS, which the verification records themselves outlive by nothing (six months,
``verification_retention_days``). The purge walks them oldest first through a partial
index holding those events only; the index on the time of every event goes (no query
read it), so an event costs the same index entries as before.

On a large table, build the index before the upgrade with CREATE INDEX CONCURRENTLY
(docs/operations.md, section Retention), or expect the upgrade to hold a write lock on
audit_events while it builds.

Revision ID: 9e4f6a8b0c13
Revises: 8d3e5f7a9b02
Create Date: 2026-12-06 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "9e4f6a8b0c13"
down_revision: str | None = "8d3e5f7a9b02"
branch_labels: str | None = None
depends_on: str | None = None

_RECORD_EVENTS = sa.text(
    "tag IN ('sms:cancelled', 'sms:expired', 'sms:failed', 'sms:sent', 'sms:unknown', "
    "'verification:approved', 'verification:check_failed', 'verification:resent', "
    "'verification:started')"
)


def upgrade() -> None:
    op.create_index(
        "ix_audit_events_records_at",
        "audit_events",
        ["at", "id"],
        if_not_exists=True,  # built beforehand, concurrently, on a large table
        sqlite_where=_RECORD_EVENTS,
        postgresql_where=_RECORD_EVENTS,
    )
    op.drop_index("ix_audit_events_at", table_name="audit_events")


def downgrade() -> None:
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.drop_index("ix_audit_events_records_at", table_name="audit_events")
