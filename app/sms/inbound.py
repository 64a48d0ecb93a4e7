"""Twilio's inbound-message webhook: a STOP opts the sender out of coupon delivery.

Signed by Twilio and checked exactly like the status callbacks (see
app.sms.callbacks.signed_form). The answer is always empty TwiML, so Twilio sends no
reply of its own making; neither the number nor the body is logged or stored.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.consent import stop
from app.core.deps import RuntimeDep
from app.core.errors import Forbidden
from app.sms.callbacks import CallbacksDisabled, signed_form

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
)
async def twilio_inbound(request: Request, rt: RuntimeDep) -> Response:
    form = await signed_form(request, rt)
    sender = str(form.get("From") or "")[:MAX_FIELD]
    body = str(form.get("Body") or "")[:MAX_FIELD]
    # Only a stop word needs the database; anything else is acknowledged as it is.
    if sender and stop.is_stop_word(body, rt.ctx.settings.stop_words):
        await rt.db.run(stop.handle_inbound, rt.ctx, sender=sender, body=body)
    return Response(EMPTY_TWIML, media_type="application/xml")
