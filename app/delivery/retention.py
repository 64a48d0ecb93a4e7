"""The delivery area's purge step (run by ``smsreg purge``, app/retention): campaign SMS
``verification_retention_days`` after they were queued.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from app.core.db import Tx
from app.core.retention import Cursor, PurgeBatch, PurgeStep, delete_batch
from app.models.outbox import OutboxMessage
from app.models.types import table

outbox_messages = table(OutboxMessage)


async def purge_campaign_messages(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of campaign messages queued before ``before``."""
    c = outbox_messages.c
    # A message is a campaign's exactly when it has a delivery (a code has none). There
    # is no index on created_at: a run walks the campaign rows once, from a cursor,
    # through the partial index ix_outbox_messages_delivery_subscriber. The kind is left
    # out of the filter on purpose: without statistics SQLite would take its equality
    # for the better index (ix_outbox_messages_kind_status_due) and sort every campaign
    # row for each batch.
    return await delete_batch(
        tx,
        table=outbox_messages,
        key=(c.delivery_id, c.subscriber_id),
        due=sa.and_(
            c.delivery_id.is_not(None),
            c.subscriber_id.is_not(None),
            c.created_at < before,
        ),
        after=after,
        limit=limit,
    )


STEPS = (
    PurgeStep(
        "campaign_messages",
        keep=lambda s: dt.timedelta(days=s.verification_retention_days),
        run=purge_campaign_messages,
    ),
)
