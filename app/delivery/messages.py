"""The SMS of a campaign delivery, rendered by the outbox worker at send time.

A message is the delivery's text in the row's locale, sent to the subscriber's number
only while the subscriber's opt-in is live (app.consent.service.is_live): checked when
the message is claimed and again just before it is handed to the carrier. A message
whose opt-in was withdrawn is cancelled (``opted_out``), one whose subscriber or text
is gone is cancelled too (``no_recipient``), and one past its time expires.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from app.consent import service as consent
from app.core.context import Context
from app.core.db import Tx
from app.delivery import repository as repo
from app.delivery.service import PURPOSE
from app.registry import service as registry
from app.sms import outbox
from app.sms.outbox import Claimed, Outgoing, Rendered

OPTED_OUT = "opted_out"
NO_RECIPIENT = "no_recipient"


class CampaignMessages:
    """The outbox's renderer of ``campaign`` messages."""

    async def render(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> Rendered:
        """Render claimed campaign messages; cancel those no longer wanted, expire late ones."""
        rendered = Rendered()
        # One query each for the batch's recipients, their opt-ins and texts.
        subscriber_ids = sorted({m.subscriber_id for m in messages if m.subscriber_id})
        people = await registry.numbers(tx, subscriber_ids)
        live = await consent.live_among(tx, subscriber_ids, purpose=PURPOSE)
        texts = await repo.bodies(tx, sorted({m.delivery_id for m in messages if m.delivery_id}))
        withdrawn: list[Claimed] = []
        gone: list[Claimed] = []
        for message in messages:
            person = people.get(message.subscriber_id or "")
            body = texts.get((message.delivery_id or "", message.locale or ""))
            if person is None or body is None:
                gone.append(message)  # erased since it was queued
            elif person.id not in live:
                withdrawn.append(message)
            elif message.expires_at <= now:
                rendered.expired.append(message)
            else:
                to = registry.phone_number(ctx, person)
                rendered.outgoing.append(Outgoing(message=message, to=to, body=body))
        await outbox.cancel(tx, withdrawn, now=now, reason=OPTED_OUT)
        await outbox.cancel(tx, gone, now=now, reason=NO_RECIPIENT)
        return rendered

    async def still_wanted(self, tx: Tx, message: Claimed, *, now: dt.datetime) -> bool:
        """The last word before the carrier: is the opt-in still live? If not, the message
        is cancelled here and must not be sent."""
        if message.subscriber_id and await consent.is_live(
            tx, subscriber_id=message.subscriber_id, purpose=PURPOSE
        ):
            return True
        await outbox.cancel(tx, [message], now=now, reason=OPTED_OUT)
        return False
