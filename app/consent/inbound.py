"""Twilio's webhooks: inbound messages, where a STOP opts the sender out of coupon
delivery, and delivery status callbacks, recorded on the outbox row.

Both are signed by Twilio and checked alike (app.sms.callbacks.signed_form). They live
with consent, not with the SMS senders, because either can withdraw a consent (a STOP
reply; a report that Twilio refused a message because its recipient had replied STOP,
error 21610), and app.sms sits below app.consent. The inbound answer is always empty
TwiML, so Twilio sends no reply of its own making; neither the number nor the body is
logged or stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.consent import stop
from app.core.deps import CtxDep, TxDep
from app.core.errors import Forbidden, InvalidInput
from app.core.http import JsonRoute
from app.sms.callbacks import (
    FINAL,
    REFERENCE,
    SIGNED_FORM,
    CallbacksDisabled,
    checked_report,
    record_status,
    signed_form,
)
from app.sms.twilio import OPTED_OUT_ERROR_CODES

router = APIRouter(prefix="/v1/sms/twilio", tags=["sms"], route_class=JsonRoute)
PATH = "/v1/sms/twilio/inbound"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_FIELD = 1600  # Twilio's longest message body
_OPTED_OUT = frozenset(str(code) for code in OPTED_OUT_ERROR_CODES)


@router.post(
    "/status",
    status_code=204,
    responses={
        403: Forbidden.openapi(),
        404: CallbacksDisabled.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Twilio delivery status callback (signed by Twilio)",
    openapi_extra=SIGNED_FORM,
)
async def twilio_status(
    request: Request,
    tx: TxDep,
    ctx: CtxDep,
    m: Annotated[
        str | None,
        Query(
            description="The outbox's id of the message, as the sender put it in the "
            "message's callback URL (signed with it); without it, or not one of the "
            "service's ids, the report is matched by Twilio's MessageSid"
        ),
    ] = None,
) -> Response:
    form = await signed_form(request, ctx)
    sid, status, code = checked_report(form)
    reference = m if m is not None and REFERENCE.fullmatch(m) else None
    recipient = str(form.get("To") or "")[:MAX_FIELD]
    opted_out = status in FINAL and code in _OPTED_OUT and bool(recipient)
    if opted_out:
        # The recipient's subscriber lock before the message's row: an erasure takes
        # them in that order (the other deadlocked with it).
        await stop.hold(tx, ctx, recipient)
    recorded = await record_status(tx, sid=sid, status=status, error_code=code, reference=reference)
    if recorded.moved and opted_out:
        # Twilio refused one of our messages because its recipient had replied STOP to
        # it, a reply this service may never have seen: withdraw the opt-in. Only the
        # report that settled the message: a repeat (Twilio retries; a signed request
        # can be replayed), or one later than another final state, withdraws nothing,
        # so an opt-in made since stands.
        await stop.carrier_stop(tx, ctx, recipient)
    # Twilio only needs a 2xx; an unknown sid is acknowledged so it stops retrying.
    return Response(status_code=204)


@router.post(
    "/inbound",
    response_class=Response,
    responses={
        200: {
            "content": {"application/xml": {"example": EMPTY_TWIML.decode()}},
            "description": "empty TwiML: no reply",
        },
        403: Forbidden.openapi(),
        404: CallbacksDisabled.openapi(),
    },
    summary="Twilio inbound SMS (signed by Twilio): STOP words opt the sender out",
    openapi_extra=SIGNED_FORM,
)
async def twilio_inbound(request: Request, tx: TxDep, ctx: CtxDep) -> Response:
    form = await signed_form(request, ctx)
    sender = str(form.get("From") or "")[:MAX_FIELD]
    body = str(form.get("Body") or "")[:MAX_FIELD]
    # Sent when the sender's Messaging Service has Advanced Opt-Out: STOP, START or HELP.
    twilio_stop = str(form.get("OptOutType") or "").strip().upper() == "STOP"
    # The transaction begins at its first statement: anything but a stop word from a
    # sender is acknowledged without touching the database.
    if sender:
        await stop.handle_inbound(tx, ctx, sender=sender, body=body, twilio_stop=twilio_stop)
    return Response(EMPTY_TWIML, media_type="application/xml")
