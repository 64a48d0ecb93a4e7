"""/v1/coupons/{coupon_id}/redemptions: thin routes that authorise, call a service, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator

from app.clients.auth import CouponsWrite
from app.core.deps import CtxDep, TxDep
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.core.http import ONE_VALUE_EACH, JsonRoute
from app.core.openapi import problems
from app.coupons import service
from app.coupons.schemas import (
    COUPON_ID_PATTERN,
    SUBSCRIBER_ID_PATTERN,
    RedemptionCreate,
    RedemptionCreatedPublic,
    RedemptionsPublic,
    not_dots_only,
)
from app.registry.service import NotVerifiedForPurpose, SubscriberNotFound
from app.verification.states import VerificationNotFound

router = APIRouter(prefix="/v1/coupons", tags=["coupons"], route_class=JsonRoute)
CouponId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=COUPON_ID_PATTERN,
        description="the frontend's coupon id: 1 to 64 of A-Z a-z 0-9 _ . - (case matters)",
    ),
    AfterValidator(not_dots_only),
]
SubscriberId = Annotated[str, Query(min_length=5, max_length=40, pattern=SUBSCRIBER_ID_PATTERN)]


@router.post(
    "/{coupon_id}/redemptions",
    status_code=201,
    responses={
        **AUTH_PROBLEMS,
        **problems(
            SubscriberNotFound,
            VerificationNotFound,
            service.CouponAlreadyRedeemed,
            service.VerificationNotApproved,
            service.VerificationAlreadyUsed,
            NotVerifiedForPurpose,
            service.VerificationApprovalExpired,
        ),
    },
    summary="Record a coupon redemption for the number behind a verification or subscriber",
)
async def redeem_coupon(
    coupon_id: CouponId, body: RedemptionCreate, client: CouponsWrite, tx: TxDep, ctx: CtxDep
) -> RedemptionCreatedPublic:
    return await service.redeem(tx, ctx, client=client, coupon_id=coupon_id, data=body)


@router.get(
    "/{coupon_id}/redemptions",
    dependencies=[ONE_VALUE_EACH],
    responses={
        **AUTH_PROBLEMS,
        404: SubscriberNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="A number's redemptions of a coupon, and how many it may still make",
)
async def list_redemptions(
    coupon_id: CouponId, subscriber_id: SubscriberId, client: CouponsWrite, tx: TxDep, ctx: CtxDep
) -> RedemptionsPublic:
    return await service.list_redemptions(
        tx, ctx, client=client, coupon_id=coupon_id, subscriber_id=subscriber_id
    )
