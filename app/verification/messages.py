"""The code SMS of a verification, rendered by the outbox worker at send time.

The code is derived again from the verification's salt (app.verification.codes), so no
code is ever stored. A message is wanted while its verification is pending and its
code valid; one that is not is dropped instead of sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import ClassVar

from app.core.context import Context
from app.core.crypto import verification_aad
from app.core.tx import Tx
from app.sms import outbox
from app.sms.outbox import Claimed, Outgoing, Rendered
from app.sms.templates import language_for, render_code_message
from app.verification import codes
from app.verification import repository as repo
from app.verification.repository import ForMessage


class CodeMessages:
    """The outbox's renderer of ``code`` messages."""

    wanted: ClassVar[str] = (
        "EXISTS (SELECT 1 FROM verifications WHERE verifications.id = "  # noqa: S608 (fixed)
        "outbox_messages.verification_id AND verifications.status = 'pending' "
        f"AND NOT {repo.NEWER_START} AND verifications.expires_at > :now)"
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
            rendered.outgoing.append(Outgoing(message=message, to=_to(ctx, v), body=_body(ctx, v)))
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


def _body(ctx: Context, v: ForMessage) -> str:
    s = ctx.settings
    code = codes.derive(ctx.keys.code, v)
    return render_code_message(
        language=language_for(v.locale, region=""),
        service=s.service_name,
        code=code,
        minutes=max(1, s.code_ttl_seconds // 60),
        webotp_domain=s.webotp_domain,
        directory=str(s.templates_dir) if s.templates_dir else None,
    )
