"""What an erasure keeps for a while: the number's coupon tallies and its consent records

Erasing oneself and verifying the number again made a new subscriber with no
redemptions, so a coupon limited per number could be redeemed again after each erasure
(and, with a correction onto the erased number, after each cycle of the two).
``erased_redemptions`` keeps the redemptions a number made as a subscriber it no longer
has (erased, or moved to another number) as counts by coupon under the number's blind
index, for ``coupon_limit_memory_days`` after the last.

The consent history went with the subscriber, though the Act on Specified Electronic
Mail (Art. 3(3)) asks a sender to keep the record of consent for a month after its last
message: ``erased_consent_events`` keeps an erased subscriber's history that long.

Revision ID: b2d4f6a8c0e3
Revises: a1c3e5f7b9d2
Create Date: 2026-12-06 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.core.db import UTCDateTime

revision: str = "b2d4f6a8c0e3"
down_revision: str | None = "a1c3e5f7b9d2"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "erased_redemptions",
        sa.Column("coupon_id", sa.String(length=64), nullable=False),
        sa.Column("phone_index", sa.String(length=120), nullable=False),
        sa.Column("moved_by", sa.String(length=40), nullable=False),
        sa.Column("redeemed", sa.Integer(), nullable=False),
        sa.Column("last_redeemed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("coupon_id", "phone_index", "moved_by"),
    )
    op.create_index(
        "ix_erased_redemptions_last",
        "erased_redemptions",
        ["last_redeemed_at", "coupon_id", "phone_index", "moved_by"],
    )
    op.create_index("ix_erased_redemptions_moved_by", "erased_redemptions", ["moved_by"])
    op.create_table(
        "erased_consent_events",
        sa.Column("subscriber_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kept_until", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", "id"),
    )
    op.create_index(
        "ix_erased_consent_events_kept_until",
        "erased_consent_events",
        ["kept_until", "subscriber_id", "id"],
    )


def downgrade() -> None:
    op.drop_table("erased_consent_events")
    op.drop_table("erased_redemptions")
