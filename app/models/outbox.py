"""SMS waiting to go out, written in the same transaction as what caused it.

A row is a verification code (``kind = 'code'``: the body is built at send time from
the verification) or a campaign message (``kind = 'campaign'``: the body is the
delivery's text in the row's locale, sent only while the subscriber's opt-in is live).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import partial_index, timestamp


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        # Claims take each kind's due rows in due order from this index alone, so a
        # campaign's backlog never delays a code, nor makes each claim sort it.
        sa.Index("ix_outbox_messages_kind_status_due", "kind", "status", "next_attempt_at"),
        # Only sent messages have a carrier id: indexing the NULLs of queued ones would
        # cost every start one more page written at commit, for nothing.
        partial_index(
            "ix_outbox_messages_carrier_message_id",
            "carrier_message_id",
            where="carrier_message_id IS NOT NULL",
        ),
        # One message per subscriber per campaign, by construction; also finds a
        # campaign's rows (tallies). Code rows are not indexed here.
        partial_index(
            "ix_outbox_messages_delivery_subscriber",
            "delivery_id",
            "subscriber_id",
            where="delivery_id IS NOT NULL",
            unique=True,
        ),
        # A subscriber's campaign messages, by when they were queued: what its erasure
        # deletes, and whether it was messaged lately (dormant erasure). Code messages
        # name no subscriber and are not indexed here.
        partial_index(
            "ix_outbox_messages_subscriber_created",
            "subscriber_id",
            "created_at",
            where="subscriber_id IS NOT NULL",
        ),
        # Campaign messages in the order they were queued, for their purge alone.
        partial_index(
            "ix_outbox_messages_campaign_created",
            "created_at",
            "id",
            where="delivery_id IS NOT NULL",
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(default="code", max_length=16, sa_column_kwargs={"server_default": "code"})
    # The body is built at send time from the verification, so no code sits in this table.
    verification_id: str | None = Field(
        default=None, foreign_key="verifications.id", max_length=40, index=True
    )
    # Campaign messages: the delivery (its text per locale) and the recipient.
    delivery_id: str | None = Field(default=None, foreign_key="deliveries.id", max_length=40)
    subscriber_id: str | None = Field(default=None, foreign_key="subscribers.id", max_length=40)
    locale: str | None = Field(default=None, max_length=8)
    # pending, sending (claimed), sent, failed, expired, cancelled, or unknown: handed to
    # the carrier with no answer (a timeout, a worker gone), and so never sent again.
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    # The claim's generation: every claim takes the next one, and a worker's writes
    # about a message hold only while its claim is still the newest (fencing).
    claim_token: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # When the message was handed to the carrier; cleared when the carrier is known not
    # to have taken it. A claim that runs out with this set may have been sent.
    send_started_at: dt.datetime | None = timestamp(nullable=True)
    created_at: dt.datetime = timestamp()
    next_attempt_at: dt.datetime = timestamp()
    claimed_until: dt.datetime | None = timestamp(nullable=True)
    expires_at: dt.datetime = timestamp()
    sent_at: dt.datetime | None = timestamp(nullable=True)
    carrier: str | None = Field(default=None, max_length=20)
    carrier_message_id: str | None = Field(default=None, max_length=64)
    delivery_status: str | None = Field(default=None, max_length=20)
    error_code: str | None = Field(default=None, max_length=20)
