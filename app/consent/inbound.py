"""Twilio's inbound-message webhook: a STOP opts the sender out of coupon delivery.

Signed by Twilio and checked exactly like the status callbacks (see
app.sms.callbacks.signed_form). It lives with consent, not with the SMS senders,
because what it does is withdraw a consent, and app.sms sits below app.consent. The
answer is always empty TwiML, so Twilio sends no reply of its own making; neither the
number nor the body is logged or stored.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.consent import stop
from app.core.deps import CtxDep, TxDep
from app.core.errors import Forbidden
from app.sms.callbacks import SIGNED_FORM, CallbacksDisabled, signed_form

router = APIRouter(prefix="/v1/sms/twilio", tags=["sms"])
PATH = "/v1/sms/twilio/inbound"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_FIELD = 1600  # Twilio's longest message body


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
