"""A subscriber's verifications, campaign messages and redemptions found by its id

A data subject's erasure deletes the verifications linked to it, its campaign messages
and its coupon redemptions by subscriber id, deleting the subscriber row makes the
database look for rows that still refer to it (foreign keys), and the dormant erasure
asks whether a subscriber had a message or a redemption lately. None of the three
tables had an index that begins with the subscriber, so each was a scan of the whole
table (3 million verifications and 3 million messages at a million subscribers) while
SQLite's write lock was held. The verification and outbox indexes are partial: a start
writes nothing more (its rows name no subscriber); an approval, a queued campaign message
and a coupon redemption each write one entry.

Revision ID: 7c2d4e6f8a91
Revises: 5b8c1d2e4f60
Create Date: 2026-12-05 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "7c2d4e6f8a91"
down_revision: str | None = "5b8c1d2e4f60"
branch_labels: str | None = None
depends_on: str | None = None

_NAMED = sa.text("subscriber_id IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_verifications_subscriber",
        "verifications",
        ["subscriber_id"],
        sqlite_where=_NAMED,
        postgresql_where=_NAMED,
    )
    op.create_index(
        "ix_outbox_messages_subscriber_created",
        "outbox_messages",
        ["subscriber_id", "created_at"],
        sqlite_where=_NAMED,
        postgresql_where=_NAMED,
    )
    op.create_index(
        "ix_coupon_redemptions_subscriber", "coupon_redemptions", ["subscriber_id", "redeemed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_coupon_redemptions_subscriber", table_name="coupon_redemptions")
    op.drop_index("ix_outbox_messages_subscriber_created", table_name="outbox_messages")
    op.drop_index("ix_verifications_subscriber", table_name="verifications")
