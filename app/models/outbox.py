"""SMS waiting to go out, written in the same transaction as what caused it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.Index("ix_outbox_messages_status_due", "status", "next_attempt_at"),
        # Only sent messages have a carrier id: indexing the NULLs of queued ones would
        # cost every start one more page written at commit, for nothing.
        sa.Index(
            "ix_outbox_messages_carrier_message_id",
            "carrier_message_id",
            sqlite_where=sa.text("carrier_message_id IS NOT NULL"),
            postgresql_where=sa.text("carrier_message_id IS NOT NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    # The body is built at send time from the verification, so no code sits in this table.
    verification_id: str = Field(foreign_key="verifications.id", max_length=40, index=True)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    created_at: dt.datetime = timestamp()
    next_attempt_at: dt.datetime = timestamp()
    claimed_until: dt.datetime | None = timestamp(nullable=True)
    expires_at: dt.datetime = timestamp()
    sent_at: dt.datetime | None = timestamp(nullable=True)
    carrier: str | None = Field(default=None, max_length=20)
    carrier_message_id: str | None = Field(default=None, max_length=64)
    delivery_status: str | None = Field(default=None, max_length=20)
    error_code: str | None = Field(default=None, max_length=20)
