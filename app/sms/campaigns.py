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
from sqlalchemy.dialects import postgresql, sqlite

from app.core.db import Tx
from app.models.outbox import OutboxMessage
from app.models.types import table
from app.sms.outbox import CAMPAIGN, delivery_state

outbox = table(OutboxMessage)
# Rows per INSERT: a batch of a large campaign would pass the drivers' limit of 32767
# parameters in one statement (ten per row).
_ROWS_PER_INSERT = 500


@dataclass(frozen=True)
class CampaignMessage:
    """One recipient of a delivery, to be queued."""

    id: str
    delivery_id: str
    subscriber_id: str
    locale: str
    created_at: dt.datetime
    expires_at: dt.datetime


async def enqueue(tx: Tx, messages: Sequence[CampaignMessage]) -> None:
    """Queue campaign messages, in the caller's transaction. A subscriber already queued
    for the delivery is skipped: the unique index allows one message per campaign."""
    rows = [
        OutboxMessage(
            id=m.id,
            kind=CAMPAIGN,
            delivery_id=m.delivery_id,
            subscriber_id=m.subscriber_id,
            locale=m.locale,
            status="pending",
            attempts=0,
            created_at=m.created_at,
            next_attempt_at=m.created_at,
            expires_at=m.expires_at,
        ).model_dump()
        for m in messages
    ]
    insert = sqlite.insert if tx.sqlite else postgresql.insert
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        await tx.execute(insert(outbox).values(chunk).on_conflict_do_nothing())


async def count_for(tx: Tx, *, delivery_id: str) -> int:
    """How many messages a delivery has in the outbox."""
    return int(
        await tx.scalar(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(outbox.c.delivery_id == delivery_id)
        )
    )


async def states_of(tx: Tx, *, delivery_id: str) -> dict[str, int]:
    """A delivery's messages counted per state as clients see it (queued, sent,
    delivered, failed, expired, cancelled, ...)."""
    rows = await tx.execute(
        sa.select(outbox.c.status, outbox.c.delivery_status, sa.func.count().label("n"))
        .where(outbox.c.delivery_id == delivery_id)
        .group_by(outbox.c.status, outbox.c.delivery_status)
    )
    found: dict[str, int] = {}
    for row in rows:
        state = delivery_state(row.status, row.delivery_status)
        found[state] = found.get(state, 0) + int(row.n)
    return found
