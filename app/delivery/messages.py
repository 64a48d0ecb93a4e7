"""The SMS of a campaign delivery, rendered by the outbox worker at send time.

A message is the delivery's text in the row's locale, sent to the subscriber's number
only while the subscriber's opt-in is live (app.consent.service): checked when the
message is claimed and again in the statement that takes it for sending. A message
whose opt-in was withdrawn is cancelled (``opted_out``), one whose subscriber or text
is gone is cancelled too (``no_recipient``), and one past its time expires.

A Korean number (+82) always gets the campaign's ``ko`` text, which starts with (광고)
and ends with the Korean opt-out line (정보통신망법 Art. 50), whatever language its
consent names; with no ``ko`` text it is not sent (``no_korean_text``). Its language was
only what the subscriber chose; the law goes by the number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import ClassVar

from app.consent import service as consent
from app.core.context import Context
from app.core.tx import Tx
from app.delivery import repository as repo
from app.delivery.service import PURPOSE
from app.purposes import Purpose
from app.registry import service as registry
from app.sms import outbox
from app.sms.outbox import Claimed, Outgoing, Rendered

OPTED_OUT = "opted_out"
NO_RECIPIENT = "no_recipient"
NO_KOREAN_TEXT = "no_korean_text"
KOREAN_NUMBER = "+82"


class CampaignMessages:
    """The outbox's renderer of ``campaign`` messages."""

    # Checked in the statement that takes a message for sending: the opt-in still live.
    wanted: ClassVar[str] = consent.live_condition(
        "outbox_messages.subscriber_id", Purpose(PURPOSE)
    )

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
        unmarked: list[Claimed] = []
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
                if to.startswith(KOREAN_NUMBER):
                    body = texts.get((message.delivery_id or "", "ko"))
                    if body is None:
                        unmarked.append(message)
                        continue
                rendered.outgoing.append(Outgoing(message=message, to=to, body=body))
        await outbox.cancel(tx, withdrawn, now=now, reason=OPTED_OUT)
        await outbox.cancel(tx, gone, now=now, reason=NO_RECIPIENT)
        await outbox.cancel(tx, unmarked, now=now, reason=NO_KOREAN_TEXT)
        return rendered

    async def unwanted(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> None:
        """Messages found unwanted just before sending: their opt-in was withdrawn (or
        their time ran out) since the claim."""
        late = [message for message in messages if message.expires_at <= now]
        await outbox.expire(tx, late, now=now)
        await outbox.cancel(
            tx, [m for m in messages if m.expires_at > now], now=now, reason=OPTED_OUT
        )
