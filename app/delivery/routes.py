"""/v1/deliveries: thin routes that authorise, call the service and answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from app.consent.auth import DeliveriesWrite
from app.core.deps import runtime_of
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.delivery import service
from app.delivery.schemas import CampaignDeliveryPublic, CampaignDeliveryStatePublic, DeliveryCreate
from app.staff.auth import as_client

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])
DeliveryId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^dlv_[A-Za-z0-9_\-]+$")]


@router.post(
    "",
    status_code=201,
    response_model=CampaignDeliveryPublic,
    responses={
        **AUTH_PROBLEMS,
        200: {"model": CampaignDeliveryPublic, "description": "replayed answer (same campaign_id)"},
        409: service.CampaignIdReused.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Send a campaign message to every subscriber with a live opt-in (and none other)",
)
async def create_delivery(
    body: DeliveryCreate, caller: DeliveriesWrite, request: Request
) -> JSONResponse:
    rt = runtime_of(request)
    started = await rt.db.run(as_client, rt.ctx, caller=caller, action=service.start, data=body)
    public = await service.finish(rt.db, rt.ctx, started)
    rt.outbox.kick()  # harmless when a separate `smsreg worker` sends instead
    if started.replayed:
        return JSONResponse(public.model_dump(mode="json"), headers={"Idempotent-Replayed": "true"})
    return JSONResponse(public.model_dump(mode="json"), status_code=201)


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
    delivery_id: DeliveryId, caller: DeliveriesWrite, request: Request
) -> CampaignDeliveryStatePublic:
    rt = runtime_of(request)
    return await rt.db.run(
        as_client, rt.ctx, caller=caller, action=service.read, delivery_id=delivery_id
    )
