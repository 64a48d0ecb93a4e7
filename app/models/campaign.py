"""Campaign deliveries: one row per campaign of a client, and its text per language."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class Delivery(SQLModel, table=True):
    """A campaign queued to every live opt-in; ``campaign_id`` makes a repeat a replay."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.UniqueConstraint("client_id", "campaign_id"),)

    id: str = Field(primary_key=True, max_length=40)
    client_id: str = Field(foreign_key="api_keys.id", max_length=40)
    campaign_id: str = Field(max_length=64)
    purpose: str = Field(max_length=32)
    # SHA-256 of the request's texts: a repeat with other texts is refused, not replayed.
    fingerprint: str = Field(max_length=64)
    default_locale: str = Field(max_length=8)
    status: str = Field(max_length=16, description="queuing, then queued")
    # Queuing runs in batches, each its own transaction; the last subscriber id done.
    cursor: str | None = Field(default=None, max_length=40)
    eligible: int = 0
    queued: int = 0
    skipped: int = 0
    created_at: dt.datetime = timestamp()
    queued_at: dt.datetime | None = timestamp(nullable=True)


class DeliveryText(SQLModel, table=True):
    """The full SMS of a campaign in one language, opt-out line included."""

    __tablename__ = "delivery_texts"
    __table_args__ = {"sqlite_with_rowid": False}

    delivery_id: str = Field(foreign_key="deliveries.id", primary_key=True, max_length=40)
    locale: str = Field(primary_key=True, max_length=8)
    body: str = Field(max_length=2000)
