"""purge indexes: every purge step walks an index whose predicate is the step's

Revision ID: 5c0a7e3d9b14
Revises: e4a7c1d2b3f6
Create Date: 2026-12-04 15:50:00.000000+00:00

- verifications: the created_at index splits in two partial indexes, one per purge step
  (never approved; approved), so purging the unapproved ones no longer walks six
  months of approved ones;
- rate_limit_hits: an index on at (the counts are read by the primary key, bucket and at);
- outbox_messages: campaign messages in the order they were queued (partial);
- staff_sessions: an index on expires_at.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c0a7e3d9b14"
down_revision: str | None = "e4a7c1d2b3f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _where(condition: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.drop_index("ix_verifications_created_at", table_name="verifications")
    op.create_index(
        "ix_verifications_unapproved_created",
        "verifications",
        ["created_at", "id"],
        **_where("status <> 'approved'"),
    )
    op.create_index(
        "ix_verifications_approved_created",
        "verifications",
        ["created_at", "id"],
        **_where("status = 'approved'"),
    )
    op.create_index("ix_rate_limit_hits_at", "rate_limit_hits", ["at"])
    op.create_index(
        "ix_outbox_messages_campaign_created",
        "outbox_messages",
        ["created_at", "id"],
        **_where("delivery_id IS NOT NULL"),
    )
    op.create_index("ix_staff_sessions_expires_at", "staff_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_staff_sessions_expires_at", table_name="staff_sessions")
    op.drop_index("ix_outbox_messages_campaign_created", table_name="outbox_messages")
    op.drop_index("ix_rate_limit_hits_at", table_name="rate_limit_hits")
    op.drop_index("ix_verifications_approved_created", table_name="verifications")
    op.drop_index("ix_verifications_unapproved_created", table_name="verifications")
    op.create_index("ix_verifications_created_at", "verifications", ["created_at"])
