"""What an outbox message is to the areas that queue it and to the worker that sends it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, NamedTuple, Protocol

from app.core.context import Context
from app.core.ids import new_ordered_id
from app.core.tx import Tx

CODE = "code"
CAMPAIGN = "campaign"


def new_message_id() -> str:
    """An outbox message id that sorts by time (messages are written on every start)."""
    return new_ordered_id("msg")


DeliveryState = Literal["queued", "sending", "sent", "delivered", "undelivered", "failed",
                        "expired", "unknown", "cancelled"]  # fmt: skip

# What clients are told (docs/api.md, DeliveryState): the outbox's own states ...
_OWN: dict[str, DeliveryState] = {
    "pending": "queued",
    "sending": "sending",
    "sent": "sent",
    "failed": "failed",
    "expired": "expired",
    "unknown": "unknown",
    "cancelled": "cancelled",
}
# ... and, once the carrier reported one, the carrier's word for it (Twilio's message
# statuses): held but not yet at the phone is "sent", at the phone "delivered".
_CARRIER: dict[str, DeliveryState] = {
    **dict.fromkeys(("accepted", "scheduled", "queued", "sending", "sent"), "sent"),
    **dict.fromkeys(("delivered", "read", "partially_delivered"), "delivered"),
    "undelivered": "undelivered",
    **dict.fromkeys(("failed", "canceled"), "failed"),
}


def delivery_state(status: str, delivery_status: str | None) -> DeliveryState:
    """A message's state as clients see it: the carrier's, once it reported one (a word
    not known here is "sent": the carrier holds it), else the outbox's."""
    if delivery_status:
        return _CARRIER.get(delivery_status, "sent")
    return _OWN.get(status, "unknown")


class MessageId(NamedTuple):
    """One message's id, as a statement that names messages answers it."""

    id: str


class Claimed(NamedTuple):
    """A message taken under a lease; ``token`` fences every later write about it."""

    id: str
    kind: str
    verification_id: str | None
    delivery_id: str | None
    subscriber_id: str | None
    locale: str | None
    attempts: int
    expires_at: dt.datetime
    token: int


@dataclass(frozen=True)
class Outgoing:
    """A claimed message, rendered and ready to send."""

    message: Claimed
    to: str
    body: str


@dataclass
class Rendered:
    """What a renderer made of claimed messages: those to send, and those whose reason is
    gone (expired)."""

    outgoing: list[Outgoing] = field(default_factory=list)
    expired: list[Claimed] = field(default_factory=list)


class Renderer(Protocol):
    """Renders one kind of claimed message, and says in SQL when one is still wanted."""

    # A condition on the outbox_messages row (named ``outbox_messages``), with ``:now``:
    # true while the message should still go out (its code still pending, its
    # recipient's opt-in still live). It is evaluated in the statement that takes the
    # message for sending, so nothing can change between the check and the send.
    wanted: ClassVar[str]

    async def render(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> Rendered:
        """Render what can be sent; what can no longer be sent goes into ``expired``."""
        ...

    async def unwanted(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> None:
        """Settle claimed messages found no longer wanted just before sending (expire or
        cancel them, with :func:`expire` or :func:`cancel`: both write only while the
        claim is still this worker's)."""
        ...
