"""/v1/coupons/{coupon_id}/redemptions: thin routes that authorise, call a service, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from app.core.deps import runtime_of
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.coupons import service
from app.coupons.auth import CouponsWrite
from app.coupons.schemas import (
    COUPON_ID_PATTERN,
    SUBSCRIBER_ID_PATTERN,
    RedemptionCreate,
    RedemptionCreatedPublic,
    RedemptionsPublic,
)
from app.staff.auth import as_client

router = APIRouter(prefix="/v1/coupons", tags=["coupons"])
CouponId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=COUPON_ID_PATTERN,
        description="the frontend's coupon id: 1 to 64 of A-Z a-z 0-9 _ . - (case matters)",
    ),
]
SubscriberId = Annotated[str, Query(min_length=5, max_length=40, pattern=SUBSCRIBER_ID_PATTERN)]


@router.post(
    "/{coupon_id}/redemptions",
    status_code=201,
    responses={
        **AUTH_PROBLEMS,
        404: service.SubscriberNotFound.openapi(),
        409: service.CouponAlreadyRedeemed.openapi(),
        410: service.VerificationApprovalExpired.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Record a coupon redemption for the number behind a verification or subscriber",
    description=(
        "404 also answers `verification-not-found`; 409 also answers "
        "`verification-not-approved`, `verification-already-used` and "
        "`not-verified-for-purpose`."
    ),
)
async def redeem_coupon(
    coupon_id: CouponId, body: RedemptionCreate, caller: CouponsWrite, request: Request
) -> RedemptionCreatedPublic:
    rt = runtime_of(request)
    return await rt.db.run(
        as_client, rt.ctx, caller=caller, action=service.redeem, coupon_id=coupon_id, data=body
    )


@router.get(
    "/{coupon_id}/redemptions",
    responses={
        **AUTH_PROBLEMS,
        404: service.SubscriberNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="A number's redemptions of a coupon, and how many it may still make",
)
async def list_redemptions(
    coupon_id: CouponId, subscriber_id: SubscriberId, caller: CouponsWrite, request: Request
) -> RedemptionsPublic:
    rt = runtime_of(request)
    return await rt.db.run(
        as_client,
        rt.ctx,
        caller=caller,
        action=service.list_redemptions,
        coupon_id=coupon_id,
        subscriber_id=subscriber_id,
    )
