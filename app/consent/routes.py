"""/v1/subscribers/{id}/consents: thin routes that authorise, call a service and answer."""

from __future__ import annotations

from fastapi import APIRouter

from app.clients.auth import ConsentsWrite
from app.consent import service
from app.consent.schemas import ConsentChange, ConsentChangePublic, ConsentsPublic
from app.core.deps import ClientIp, CtxDep, TxDep
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.core.http import JsonRoute
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.registry.service import NotVerifiedForPurpose, SubscriberNotFound

router = APIRouter(prefix="/v1/subscribers", tags=["consents"], route_class=JsonRoute)


@router.post(
    "/{subscriber_id}/consents",
    status_code=201,
    responses={
        **AUTH_PROBLEMS,
        404: SubscriberNotFound.openapi(),
        409: NotVerifiedForPurpose.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Record an opt-in or opt-out (appended to the history; an opt-out stops sends at once)",
)
async def change_consent(
    subscriber_id: SubscriberId,
    body: ConsentChange,
    client: ConsentsWrite,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
) -> ConsentChangePublic:
    return await service.record(
        tx, ctx, client=client, subscriber_id=subscriber_id, data=body, ip=ip
    )


@router.get(
    "/{subscriber_id}/consents",
    responses={
        **AUTH_PROBLEMS,
        404: SubscriberNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="A subscriber's current consent and its history (never the number)",
)
async def read_consents(
    subscriber_id: SubscriberId, client: ConsentsWrite, tx: TxDep, ctx: CtxDep
) -> ConsentsPublic:
    return await service.read(tx, ctx, client=client, subscriber_id=subscriber_id)
