"""/v1/subscribers/{id}/consents: thin routes that authorise, call a service and answer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.consent import service
from app.consent.auth import ConsentsWrite
from app.consent.schemas import ConsentChange, ConsentChangePublic, ConsentsPublic
from app.core.deps import request_ip, runtime_of
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.staff.auth import as_client

router = APIRouter(prefix="/v1/subscribers", tags=["consents"])


@router.post(
    "/{subscriber_id}/consents",
    status_code=201,
    responses={
        **AUTH_PROBLEMS,
        404: service.SubscriberNotFound.openapi(),
        409: service.NotVerifiedForPurpose.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Record an opt-in or opt-out (appended to the history; an opt-out stops sends at once)",
)
async def change_consent(
    subscriber_id: SubscriberId, body: ConsentChange, caller: ConsentsWrite, request: Request
) -> ConsentChangePublic:
    rt = runtime_of(request)
    return await rt.db.run(
        as_client,
        rt.ctx,
        caller=caller,
        action=service.record,
        subscriber_id=subscriber_id,
        data=body,
        ip=request_ip(request),
    )


@router.get(
    "/{subscriber_id}/consents",
    responses={
        **AUTH_PROBLEMS,
        404: service.SubscriberNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="A subscriber's current consent and its history (never the number)",
)
async def read_consents(
    subscriber_id: SubscriberId, caller: ConsentsWrite, request: Request
) -> ConsentsPublic:
    rt = runtime_of(request)
    return await rt.db.run(
        as_client, rt.ctx, caller=caller, action=service.read, subscriber_id=subscriber_id
    )
