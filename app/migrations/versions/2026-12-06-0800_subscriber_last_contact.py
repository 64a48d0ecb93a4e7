"""A subscriber's last contact: when it last redeemed a coupon or was sent a campaign

Dormancy (no verification, redemption or campaign message for ``dormant_after_days``,
365) was read from the redemptions and campaign messages themselves, but campaign
messages are purged after ``verification_retention_days`` (183): a subscriber messaged
200 days ago was erased as dormant. The subscriber's row now keeps the time of its last
redemption or campaign message; filled here from what the tables still hold.

Revision ID: a1c3e5f7b9d2
Revises: 9e4f6a8b0c13
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.core.db import UTCDateTime

revision: str = "a1c3e5f7b9d2"
down_revision: str | None = "9e4f6a8b0c13"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("last_contact_at", UTCDateTime(), nullable=True))
    # The latest of the subscriber's redemptions and campaign messages (a message is a
    # campaign's when it has a delivery); only the subscribers with either are written.
    subscribers = sa.table("subscribers", sa.column("id"), sa.column("last_contact_at"))
    redeemed = sa.table("coupon_redemptions", sa.column("subscriber_id"), sa.column("redeemed_at"))
    sent = sa.table(
        "outbox_messages",
        sa.column("subscriber_id"),
        sa.column("created_at"),
        sa.column("delivery_id"),
    )
    redemptions = (
        sa.select(redeemed.c.redeemed_at.label("at"))
        .where(redeemed.c.subscriber_id == subscribers.c.id)
        .correlate(subscribers)
    )
    messages = (
        sa.select(sent.c.created_at.label("at"))
        .where(sent.c.subscriber_id == subscribers.c.id, sent.c.delivery_id.is_not(None))
        .correlate(subscribers)
    )
    contacts = sa.union_all(redemptions, messages).subquery("contacts")
    op.execute(
        sa.update(subscribers)
        .values(last_contact_at=sa.select(sa.func.max(contacts.c.at)).scalar_subquery())
        .where(sa.or_(redemptions.exists(), messages.exists()))
    )


def downgrade() -> None:
    # SQLite drops the column in place (3.35 and later): a batch would copy the table,
    # which the other tables' foreign keys to it refuse.
    op.drop_column("subscribers", "last_contact_at")
