"""The interface every SMS sender implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SendResult:
    """What the carrier said when it accepted a message."""

    carrier: str
    message_id: str | None
    status: str = "sent"


class SendError(Exception):
    """A send that did not go through; ``permanent`` ones are never retried.

    ``unknown`` means the request may have reached the carrier (it was written, and no
    answer came): the message may have been accepted, so it is never sent again.
    ``opted_out`` means the carrier refused because the recipient told it to stop
    sending (a STOP reply the carrier acted on): the recipient's own word.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        permanent: bool,
        unknown: bool = False,
        opted_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent
        self.unknown = unknown
        self.opted_out = opted_out


class SmsSender(Protocol):
    """Sends one SMS. Blocking: the outbox worker calls it off the event loop when needed."""

    name: str
    blocking: bool

    def send(
        self,
        *,
        to: str,
        body: str,
        reference: str | None = None,
        valid_for: int | None = None,
        bulk: bool = False,
    ) -> SendResult:
        """Send ``body`` to the E.164 number ``to``; raise SendError on failure.

        ``reference`` is the outbox's id of the message (a carrier's status reports may
        name it); ``valid_for`` the seconds within which it is still worth delivering (a
        carrier may drop it from its queue after them); ``bulk`` says it is a campaign
        message, which a sender may send from a sender of its own. A sender may ignore
        all three.
        """
        ...
