"""The SMS outbox: rows written with what caused them, and the fenced steps a worker takes.

A row is a verification code (``kind = 'code'``) or a campaign message (``kind =
'campaign'``). The area that queues a kind also renders it and says when it is still
wanted: the worker is given one :class:`Renderer` per kind (wired in app.main), so this
package never imports the areas that use it. A code's body is built at send time from
its verification, so the table never holds a code.

Each message moves ``pending`` -> ``sending`` (claimed) -> ``sent``, ``failed``,
``expired``, ``cancelled`` or ``unknown``. Every claim takes the next ``claim_token``,
and each later write about the message holds only while that token is still the
message's (a fence): a worker whose lease was taken over writes nothing. Just before a
message is handed to the carrier it is marked ``send_started_at``, in one statement that
also re-checks that it is still held and still wanted; a message found with that mark
and no outcome (a worker died mid-send, a carrier that never answered) may have been
sent, so it becomes ``unknown`` and is never sent again.

The modules: messages.py (what a message is to the areas and the worker), claims.py
(claiming due messages, giving up on unwanted ones), sending.py (each claimed message's
fenced steps) and depth.py (what waits, for the metrics).
"""

from app.sms.outbox.claims import cancel, claim, expire
from app.sms.outbox.depth import Depth, depth
from app.sms.outbox.messages import (
    CAMPAIGN,
    CODE,
    Claimed,
    MessageId,
    Outgoing,
    Rendered,
    Renderer,
    delivery_state,
    new_message_id,
)
from app.sms.outbox.sending import Outcome, record, release, renew, start_sending

__all__ = [
    "CAMPAIGN",
    "CODE",
    "Claimed",
    "Depth",
    "MessageId",
    "Outcome",
    "Outgoing",
    "Renderer",
    "Rendered",
    "cancel",
    "claim",
    "delivery_state",
    "depth",
    "expire",
    "new_message_id",
    "record",
    "release",
    "renew",
    "start_sending",
]
