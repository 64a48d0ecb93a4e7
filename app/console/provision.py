"""A subject's say over third-party provision, taken by staff on the subscriber's page:
stop or resume provision (APPI Art. 35), and consent to (or withdrawal from) provision
to one recipient.

The same services as /v1/subscribers/{id}/third-party-provision and
/v1/subscribers/{id}/provision-consents (app.ledger.provision), under the same role set:
each change names the staff member, is audited and is logged in the access log, in one
transaction. The form's fields are checked by the API's own schemas.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import RedirectResponse

from app.console.auth import ConsoleForm
from app.console.web import ConsoleRoute, checked
from app.core.deps import ClientIp, CtxDep, TxDep
from app.ledger import provision
from app.ledger.schemas import ProvisionConsentChange, ProvisionStopChange
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.staff import roles
from app.staff.auth import Staff

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

HandlerForm = Annotated[Staff, Depends(ConsoleForm(roles.SUBJECT_REQUESTS))]
# Bounded a little above the schemas' own limits, which then name the field at fault.
Short = Annotated[str, Form(max_length=60)]
Recipient = Annotated[str, Form(max_length=400)]


def _back(subscriber_id: str) -> RedirectResponse:
    return RedirectResponse(f"/console/subscribers/{subscriber_id}#provision", status_code=303)


@router.post("/subscribers/{subscriber_id}/third-party-provision")
async def change_stop(
    subscriber_id: SubscriberId,
    staff: HandlerForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    action: Short,
    source: Short,
) -> RedirectResponse:
    change = checked(ProvisionStopChange, {"action": action, "source": source})
    await provision.staff_change_stop(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, change=change
    )
    return _back(subscriber_id)


@router.post("/subscribers/{subscriber_id}/provision-consents")
async def change_consent(
    subscriber_id: SubscriberId,
    staff: HandlerForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    action: Short,
    recipient: Recipient,
    source: Short,
) -> RedirectResponse:
    fields = {"action": action, "recipient": recipient, "source": source}
    change = checked(ProvisionConsentChange, fields)
    await provision.staff_change_consent(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, change=change
    )
    return _back(subscriber_id)
