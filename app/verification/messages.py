"""The code SMS of a verification, rendered by the outbox worker at send time.

The code is derived again from the verification's salt (app.verification.codes), so no
code is ever stored. A message is wanted while its verification is pending and its
code valid; one that is not is dropped instead of sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import urlsplit

from app.clients.service import SELF_SERVICE_ID
from app.core.config import Settings
from app.core.context import Context
from app.core.crypto import verification_aad
from app.core.tx import Tx
from app.sms import outbox
from app.sms.outbox import Claimed, Outgoing, Rendered
from app.sms.templates import SUBJECT, language_for, render_code_message
from app.verification import codes
from app.verification import repository as repo
from app.verification.repository import ForMessage


class CodeMessages:
    """The outbox's renderer of ``code`` messages."""

    # Pending, not superseded, not expired, and the verification's newest message: a
    # resend queued while an earlier message waited (a carrier down, its retries backing
    # off) carries the same code, and is the one sent; the earlier one, not yet handed
    # to the carrier, expires unsent rather than going out too when the carrier is back.
    wanted: ClassVar[str] = (
        "EXISTS (SELECT 1 FROM verifications WHERE verifications.id = "  # noqa: S608 (fixed)
        "outbox_messages.verification_id AND verifications.status = 'pending' "
        f"AND NOT {repo.NEWER_START} AND verifications.expires_at > :now) "
        "AND NOT EXISTS (SELECT 1 FROM outbox_messages AS resent WHERE "
        "resent.verification_id = outbox_messages.verification_id AND "
        "(resent.created_at, resent.id) > (outbox_messages.created_at, outbox_messages.id))"
    )

    async def render(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> Rendered:
        """Render the codes of claimed messages; those whose code is dead expire."""
        rendered = Rendered()
        # One query for the batch's verifications, not one per message.
        found = await repo.for_messages(
            tx, sorted({m.verification_id for m in messages if m.verification_id})
        )
        for message in messages:
            v = found.get(message.verification_id or "")
            if v is None or v.status != "pending" or min(v.expires_at, message.expires_at) <= now:
                rendered.expired.append(message)
                continue
            body = _body(ctx, v, now=now)
            rendered.outgoing.append(Outgoing(message=message, to=_to(ctx, v), body=body))
        return rendered

    async def unwanted(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> None:
        """A code no longer wanted (approved, superseded, expired) expires unsent."""
        await outbox.expire(tx, messages, now=now)


def _to(ctx: Context, v: ForMessage) -> str:
    return ctx.keys.decrypt(
        v.phone_ciphertext, key_id=v.phone_key_id, context=verification_aad(v.id)
    )


# A message goes out a moment after its code was made: so long, it still says the code's
# whole lifetime.
_SEND_SLACK_SECONDS = 5


def _minutes_left(expires_at: dt.datetime, now: dt.datetime) -> int:
    """The whole minutes the code has left as its SMS goes out, at least 1. A resend sends
    the same code with its expiry unchanged: it said the full lifetime however little was
    left, and the person found the code expired before the time it promised."""
    left = (expires_at - now).total_seconds() + _SEND_SLACK_SECONDS
    return max(1, int(left // 60))


def _body(ctx: Context, v: ForMessage, *, now: dt.datetime) -> str:
    s = ctx.settings
    code = codes.derive(ctx.keys.code, v)
    # The service's own pages' code (/my/, the subject API): a client's `data_subject`
    # code is its frontend's, bound to its site as any of its codes.
    own = v.client_id == SELF_SERVICE_ID
    return render_code_message(
        language=language_for(v.locale, region=""),
        service=s.service_name,
        code=code,
        minutes=_minutes_left(v.expires_at, now),
        webotp_domain=subject_webotp_domain(s) if own else s.webotp_domain,
        directory=str(s.templates_dir) if s.templates_dir else None,
        kind=SUBJECT if own else "",
    )


def subject_webotp_domain(settings: Settings) -> str | None:
    """The WebOTP domain of a data subject's own code: the host that serves /my/
    (``PUBLIC_BASE_URL``'s), never the coupon site's, whose pages must not be offered a
    code that opens the person's records; without it, no WebOTP line."""
    if settings.public_base_url is None:
        return None
    return urlsplit(settings.public_base_url).hostname
