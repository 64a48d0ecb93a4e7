"""The outbox as campaign deliveries use it: one message per recipient, queued in the
caller's transaction, and a delivery's messages counted by state.

A campaign message holds no number and no text: the recipient is a subscriber id and
the body the delivery's text in the row's locale, both read when it is sent (the
renderer is app.delivery.messages.CampaignMessages).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from app.audit.events import Tag, event, record_events
from app.core.sql import Sql
from app.core.tx import Tx
from app.models.outbox import OutboxMessage
from app.models.types import table
from app.sms.outbox import CAMPAIGN, delivery_state

outbox = table(OutboxMessage)
NUMBER_CHANGED = "number_changed"  # why a message is cancelled: its recipient's number moved


@dataclass(frozen=True)
class CampaignMessage:
    """One recipient of a delivery, to be queued."""

    id: str
    delivery_id: str
    subscriber_id: str
    locale: str
    created_at: dt.datetime
    expires_at: dt.datetime


# Fixed SQL, one executemany per batch: a campaign writes one row per recipient
# (bench/delivery.py: 100,000 in under 60 s). SQLAlchemy cannot cache a multi-row INSERT,
# so compiling one per chunk cost more than the writes, and a cached one-row statement
# per message is a round trip per message on PostgreSQL (and half the rate on SQLite).
# A subscriber already queued for the delivery is skipped by the unique index.
_ENQUEUE = Sql(
    "INSERT INTO outbox_messages (id, kind, delivery_id, subscriber_id, locale, status, "  # noqa: S608 (fixed text)
    f"attempts, created_at, next_attempt_at, expires_at) VALUES (:id, '{CAMPAIGN}', "
    ":delivery_id, :subscriber_id, :locale, 'pending', 0, :created_at, :created_at, "
    ":expires_at) ON CONFLICT DO NOTHING"
)


async def enqueue(tx: Tx, messages: Sequence[CampaignMessage]) -> None:
    """Queue campaign messages, in the caller's transaction: one message per subscriber
    per delivery (one already queued is left as it is)."""
    await tx.run_many(
        _ENQUEUE,
        [
            {
                "id": m.id,
                "delivery_id": m.delivery_id,
                "subscriber_id": m.subscriber_id,
                "locale": m.locale,
                "created_at": m.created_at,
                "expires_at": m.expires_at,
            }
            for m in messages
        ],
    )


async def count_for(tx: Tx, *, delivery_id: str) -> int:
    """How many messages a delivery has in the outbox."""
    return int(
        await tx.scalar(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(outbox.c.delivery_id == delivery_id)
        )
    )


@dataclass(frozen=True)
class DeliveryStates:
    """A delivery's messages counted per state as clients see it (queued, sent,
    delivered, failed, expired, cancelled, ...), and the cancelled ones per reason
    (opted_out, no_recipient, number_changed, no_korean_text): a campaign without a
    ``ko`` text is not sent to Korean numbers, and its client learnt only that some were
    cancelled."""

    states: dict[str, int]
    cancelled_reasons: dict[str, int]


async def states_of(tx: Tx, *, delivery_id: str) -> DeliveryStates:
    """A delivery's :class:`DeliveryStates`, in one pass over its messages."""
    rows = await tx.execute(
        sa.select(
            outbox.c.status, outbox.c.delivery_status, outbox.c.error_code,
            sa.func.count().label("n"),
        )
        .where(outbox.c.delivery_id == delivery_id)
        .group_by(outbox.c.status, outbox.c.delivery_status, outbox.c.error_code)
    )  # fmt: skip
    states: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for row in rows:
        state = delivery_state(row.status, row.delivery_status)
        states[state] = states.get(state, 0) + int(row.n)
        if row.status == "cancelled":
            reason = str(row.error_code or "unrecorded")
            reasons[reason] = reasons.get(reason, 0) + int(row.n)
    return DeliveryStates(states=states, cancelled_reasons=reasons)


@dataclass(frozen=True)
class Received:
    """A campaign message a subscriber was sent (or is due to be), as they may see it."""

    delivery_id: str
    queued_at: dt.datetime
    sent_at: dt.datetime | None
    state: str


async def received_by(tx: Tx, *, subscriber_id: str, limit: int) -> list[Received]:
    """The newest campaign messages to one subscriber, newest first."""
    c = outbox.c
    rows = await tx.execute(
        sa.select(c.delivery_id, c.created_at, c.sent_at, c.status, c.delivery_status)
        .where(c.subscriber_id == subscriber_id, c.kind == CAMPAIGN)
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(limit)
    )
    return [
        Received(
            delivery_id=row.delivery_id or "",
            queued_at=row.created_at,
            sent_at=row.sent_at,
            state=delivery_state(row.status, row.delivery_status),
        )
        for row in rows
    ]


async def received_count(tx: Tx, *, subscriber_id: str) -> int:
    """How many campaign messages to one subscriber are kept."""
    c = outbox.c
    found = await tx.scalar(
        sa.select(sa.func.count())
        .select_from(outbox)
        .where(c.subscriber_id == subscriber_id, c.kind == CAMPAIGN)
    )
    return int(found or 0)


async def cancel_held_for(tx: Tx, *, subscriber_id: str, now: dt.datetime) -> None:
    """Cancel the subscriber's campaign messages a worker holds and has not yet handed to
    the carrier: they were rendered to the number it had (a correction is moving it). The
    worker's statement that starts the send then finds them cancelled; messages still
    queued are rendered to the new number when claimed."""
    c = outbox.c
    unsent = (c.subscriber_id == subscriber_id, c.kind == CAMPAIGN, c.send_started_at.is_(None))
    if not tx.sqlite:
        # Those still queued locked too, until the move commits: a worker's claim skips
        # them (SKIP LOCKED) rather than render them to the old number meanwhile. (SQLite's
        # one writer, the move, keeps every claim out already.)
        await tx.execute(
            sa.select(c.id).where(*unsent, c.status.in_(("pending", "sending"))).with_for_update()
        )
    cancelled = await tx.execute(
        sa.update(outbox)
        .where(*unsent, c.status == "sending")
        .values(status="cancelled", claimed_until=None, error_code=NUMBER_CHANGED)
        .returning(c.id)
    )
    details = {"reason": NUMBER_CHANGED, "subscriber_id": subscriber_id}
    await record_events(
        tx,
        [
            event(Tag.SMS_CANCELLED, actor="outbox", at=now, subject=row.id, details=details)
            for row in cancelled
        ],
    )
