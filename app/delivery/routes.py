"""/v1/deliveries: thin routes that authorise, call the service and answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.clients.auth import DeliveriesWrite
from app.core.deps import CtxDep, DbDep, OutboxDep, TxDep
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.core.http import REPLAYED, JsonRoute, created, created_answer, replayed_answer
from app.delivery import service
from app.delivery.auth import DeliveriesQueue
from app.delivery.schemas import CampaignDeliveryPublic, CampaignDeliveryStatePublic, DeliveryCreate

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"], route_class=JsonRoute)
DeliveryId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^dlv_[A-Za-z0-9_\-]+$")]
_LOCATION = "the delivery's path, `/v1/deliveries/{id}`, which reads its progress"


@router.post(
    "",
    status_code=201,
    response_model=CampaignDeliveryPublic,
    responses={
        **AUTH_PROBLEMS,
        201: created_answer(_LOCATION),
        200: replayed_answer(
            CampaignDeliveryPublic, "replayed answer (same campaign_id)", location=_LOCATION
        ),
        409: service.CampaignIdReused.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Send a campaign message to every subscriber with a live opt-in (and none other)",
)
async def create_delivery(
    body: DeliveryCreate,
    client: DeliveriesQueue,
    db: DbDep,
    ctx: CtxDep,
    outbox: OutboxDep,
    response: Response,
) -> CampaignDeliveryPublic:
    # No request transaction here: the service queues in short transactions of its own.
    delivered = await service.deliver(db, ctx, client=client, data=body)
    outbox.kick()  # every batch is committed; harmless when `smsreg worker` sends instead
    created(response, f"{router.prefix}/{delivered.public.id}")
    if delivered.replayed:
        response.status_code = 200
        response.headers.update(REPLAYED)
    return delivered.public


@router.get(
    "/{delivery_id}",
    responses={
        **AUTH_PROBLEMS,
        404: service.DeliveryNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="A delivery's counts and its messages per delivery state",
)
async def read_delivery(
    delivery_id: DeliveryId, client: DeliveriesWrite, tx: TxDep, ctx: CtxDep
) -> CampaignDeliveryStatePublic:
    return await service.read(tx, ctx, client=client, delivery_id=delivery_id)
