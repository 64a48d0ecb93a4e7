"""/v1/subscribers/{id}/...: a subject's requests about third-party provision, handled by
staff (stop or resume, consent to a recipient, the disclosure records about them).

Each is logged in the access log with the staff member who handled it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.core.deps import ClientIp, CtxDep, TxDep
from app.core.errors import InvalidInput
from app.core.http import NO_STORE, ONE_VALUE_EACH, JsonRoute
from app.ledger import provision
from app.ledger.errors import SubjectNotFound
from app.ledger.schemas import (
    ProvisionConsentChange,
    ProvisionConsentPublic,
    ProvisionStatePublic,
    ProvisionStopChange,
    SubscriberDisclosuresPublic,
)
from app.models.types import MAX_BIG_INTEGER
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.staff.auth import STAFF_PROBLEMS, SubjectRequests

router = APIRouter(prefix="/v1/subscribers", tags=["disclosure ledger"], route_class=JsonRoute)
_SUBJECT_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **STAFF_PROBLEMS,
    404: SubjectNotFound.openapi(),
    422: InvalidInput.openapi(),
}


def _state(state: provision.ProvisionState) -> ProvisionStatePublic:
    return ProvisionStatePublic(
        stopped_at=state.stopped_at,
        consents=[ProvisionConsentPublic.model_validate(consent) for consent in state.consents],
    )


@router.get(
    "/{subscriber_id}/third-party-provision",
    responses=_SUBJECT_PROBLEMS,
    summary="A subject's stop of third-party provision and consents to recipients "
    "(operator, privacy officer)",
)
async def read_provision(
    subscriber_id: SubscriberId, staff: SubjectRequests, tx: TxDep, ctx: CtxDep, ip: ClientIp
) -> ProvisionStatePublic:
    return _state(
        await provision.staff_read_state(tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id)
    )


@router.post(
    "/{subscriber_id}/third-party-provision",
    responses=_SUBJECT_PROBLEMS,
    summary="Record a subject's request to stop (or resume) third-party provision, APPI Art. 35",
)
async def change_provision(
    subscriber_id: SubscriberId,
    body: ProvisionStopChange,
    staff: SubjectRequests,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
) -> ProvisionStatePublic:
    state = await provision.staff_change_stop(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, change=body
    )
    return _state(state)


@router.post(
    "/{subscriber_id}/provision-consents",
    responses=_SUBJECT_PROBLEMS,
    summary="Record a subject's consent to (or withdrawal from) provision to one recipient",
)
async def change_provision_consent(
    subscriber_id: SubscriberId,
    body: ProvisionConsentChange,
    staff: SubjectRequests,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
) -> ProvisionStatePublic:
    state = await provision.staff_change_consent(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, change=body
    )
    return _state(state)


@router.get(
    "/{subscriber_id}/disclosures",
    dependencies=[ONE_VALUE_EACH],
    responses=_SUBJECT_PROBLEMS,
    summary="The disclosure records about one subject, for their request (APPI Art. 33(5))",
)
async def subject_disclosures(
    subscriber_id: SubscriberId,
    staff: SubjectRequests,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    response: Response,
    after_seq: Annotated[int, Query(ge=0, le=MAX_BIG_INTEGER)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SubscriberDisclosuresPublic:
    records = await provision.staff_read_records(
        tx,
        ctx,
        staff=staff,
        ip=ip,
        subscriber_id=subscriber_id,
        after_seq=after_seq,
        limit=limit,
    )
    response.headers.update(NO_STORE)
    return SubscriberDisclosuresPublic(subscriber_id=subscriber_id, records=records)
