"""A verified number in the registry, and the purposes it was verified for."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from app.models.types import blob, timestamp


class Subscriber(SQLModel, table=True):
    __tablename__ = "subscribers"

    id: str = Field(primary_key=True, max_length=40)
    phone_ciphertext: bytes = blob()
    phone_key_id: str = Field(max_length=40)
    phone_index: str = Field(max_length=120, unique=True)
    created_at: dt.datetime = timestamp()
    last_verified_at: dt.datetime = timestamp()
    # The last coupon redemption or campaign message queued to it (None: neither yet).
    # With last_verified_at it says whether the subscriber is dormant; kept here because
    # redemptions and messages may be purged before dormancy is decided.
    last_contact_at: dt.datetime | None = timestamp(nullable=True)


class SubscriberPurpose(SQLModel, table=True):
    __tablename__ = "subscriber_purposes"
    # Small rows, always found by their key: on SQLite the table is its key's B-tree,
    # so a check writes one page for it instead of a row page and a key-index page.
    __table_args__ = {"sqlite_with_rowid": False}

    subscriber_id: str = Field(foreign_key="subscribers.id", primary_key=True, max_length=40)
    purpose: str = Field(primary_key=True, max_length=32)
    verified_at: dt.datetime = timestamp()
    # When the number was first verified for the purpose: set once, kept on every later
    # verification (unknown, NULL, for purposes held before it was recorded).
    since: dt.datetime | None = timestamp(nullable=True)
