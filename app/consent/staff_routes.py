"""Staff routes that read a subscriber: masked, with purposes and consent; logged.

They live above the registry because they show consent (see app/consent/staff.py); the
reveal and the access log are the registry's own routes (app/registry/routes.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.consent import staff as views
from app.consent.schemas import SubscriberSearchResult, SubscriberStaffView
from app.core.deps import ClientIp, CtxDep, TxDep
from app.core.errors import InvalidInput
from app.core.http import NO_STORE, JsonRoute, segment_beside
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.registry.schemas import SubscriberSearch
from app.registry.service import SubscriberNotFound
from app.staff.auth import STAFF_PROBLEMS, SubscriberRead

router = APIRouter(prefix="/v1/subscribers", tags=["registry"], route_class=JsonRoute)


@router.post(
    "/search",
    responses={**STAFF_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Find a subscriber by number, masked (operator, privacy officer); logged",
)
async def search_subscribers(
    body: SubscriberSearch,
    staff: SubscriberRead,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    response: Response,
) -> SubscriberSearchResult:
    found = await views.search(tx, ctx, staff=staff, phone=body.phone, ip=ip)
    response.headers.update(NO_STORE)
    return found


# ``GET /v1/subscribers/search`` is the search's path asked with another method (405),
# not a subscriber id.
SUBSCRIBER_ID = segment_beside("subscriber_id", ("search",))


@router.get(
    f"/{SUBSCRIBER_ID}",
    responses={
        **STAFF_PROBLEMS,
        404: SubscriberNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="A subscriber, masked, with purposes and consent (operator, privacy officer); logged",
)
async def read_subscriber(
    subscriber_id: SubscriberId,
    staff: SubscriberRead,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    response: Response,
) -> SubscriberStaffView:
    view = await views.read(tx, ctx, staff=staff, subscriber_id=subscriber_id, ip=ip)
    response.headers.update(NO_STORE)
    return view
