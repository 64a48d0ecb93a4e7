"""Coupon redemptions, each tied to the number's identity (the subscriber), not an account."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class CouponRedemption(SQLModel, table=True):
    """One redemption of a coupon by a number; never updated.

    ``seq`` numbers a number's redemptions of one coupon from 1 up to the limit, and the
    unique key on (coupon, subscriber, seq) makes the database itself refuse a second
    row with the same number, whatever the service's locking does.
    """

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        sa.UniqueConstraint(
            "coupon_id", "subscriber_id", "seq", name="uq_coupon_redemptions_number_seq"
        ),
        sa.UniqueConstraint("verification_id", name="uq_coupon_redemptions_verification_id"),
        # A subscriber's redemptions, newest last: what its erasure deletes, its history
        # (subject access, the console), and whether it redeemed lately (dormant erasure).
        sa.Index("ix_coupon_redemptions_subscriber", "subscriber_id", "redeemed_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    coupon_id: str = Field(max_length=64)
    subscriber_id: str = Field(foreign_key="subscribers.id", max_length=40)
    seq: int
    client_id: str = Field(foreign_key="api_keys.id", max_length=40)
    # The approved verification that backed it (each backs one redemption at most). Not a
    # foreign key: verifications are purged after their retention, redemptions are kept.
    verification_id: str | None = Field(default=None, max_length=40)
    redeemed_at: dt.datetime = timestamp()


class ErasedRedemptions(SQLModel, table=True):
    """How often a number redeemed a coupon as a subscriber it no longer has, by the
    number's blind index: so that neither an erasure nor a correction renews a coupon's
    limit per number. ``moved_by`` is the subscriber that moved to another number (a
    correction; its own rows never count against it), or empty once that subscriber is
    erased or for an erased one. Deleted ``coupon_limit_memory_days`` after the day of
    the last of those redemptions (a day, not an instant: no audit event's time matches)."""

    __tablename__ = "erased_redemptions"
    __table_args__ = (
        sa.Index(
            "ix_erased_redemptions_last",
            "last_redeemed_at",
            "coupon_id",
            "phone_index",
            "moved_by",
        ),
        sa.Index("ix_erased_redemptions_moved_by", "moved_by"),
    )

    coupon_id: str = Field(primary_key=True, max_length=64)
    phone_index: str = Field(primary_key=True, max_length=120)
    moved_by: str = Field(primary_key=True, max_length=40)
    redeemed: int
    last_redeemed_at: dt.datetime = timestamp()
