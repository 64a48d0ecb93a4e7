"""The delivery area's purge step (run by ``smsreg purge``, app/retention): campaign SMS
``verification_retention_days`` after they were queued.
"""

from __future__ import annotations

import datetime as dt

from app.core.retention import PurgeStep
from app.models.outbox import OutboxMessage
from app.models.types import table

outbox_messages = table(OutboxMessage)
c = outbox_messages.c

STEPS = (
    # A message is a campaign's exactly when it has a delivery (a code has none): the
    # partial index holds campaign rows only, in the order they were queued.
    PurgeStep(
        "campaign_messages",
        keep=lambda s: dt.timedelta(days=s.verification_retention_days),
        table=outbox_messages,
        index="ix_outbox_messages_campaign_created",
        key=(c.created_at, c.id),
        time=c.created_at,
        where=c.delivery_id.is_not(None),
    ),
)
