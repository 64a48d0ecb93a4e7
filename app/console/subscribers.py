"""/console/subscribers: masked search, a subscriber's page, the reveal with a reason;
/console/access-log: the log of every such view, filtered, paged, downloaded as CSV.

The same services as the API (app.consent.staff, app.registry, app.ledger.provision),
under the same role sets: every search, read and reveal is in the access log. The number
travels in a form's body, never in a URL; a revealed number is shown in a page nobody
keeps (``no-store``) and hidden again after 30 s by /console/static/reveal.js.
"""

from __future__ import annotations

from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.consent import staff as views
from app.console.auth import ConsoleForm, ConsoleRoles
from app.console.web import ConsoleRoute, query_form, staff_page
from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.coupons import service as coupons
from app.ledger import provision
from app.registry import access_log, service
from app.registry.schemas import MAX_REASON, AccessAction, AccessLogFilter
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.staff import roles
from app.staff.auth import Staff
from app.subject.schemas import StaffChannel

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

SubscriberPage = Annotated[Staff, Depends(ConsoleRoles(roles.SUBSCRIBER_READ))]
SubscriberForm = Annotated[Staff, Depends(ConsoleForm(roles.SUBSCRIBER_READ))]
RevealForm = Annotated[Staff, Depends(ConsoleForm(roles.PHONE_REVEAL))]
AccessLogPage = Annotated[Staff, Depends(ConsoleRoles(roles.ACCESS_LOG_READ))]
REVEAL_SECONDS = 30
PAGE_SIZE = 50
ACTIONS = get_args(AccessAction)


async def access_filters(request: Request) -> AccessLogFilter:
    """The access log's filter form (its empty fields mean no filter)."""
    return query_form(request, AccessLogFilter)


Filters = Annotated[AccessLogFilter, Depends(access_filters)]


@router.get("/subscribers")
async def search_form(request: Request, staff: SubscriberPage, ctx: CtxDep) -> Response:
    return staff_page(request, ctx, staff, "subscribers.html", {"results": None})


@router.post("/subscribers/search")
async def search(
    request: Request,
    staff: SubscriberForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    phone: Annotated[str, Form(min_length=1, max_length=32)],
) -> Response:
    found = await views.search(tx, ctx, staff=staff, phone=phone, ip=ip)
    return staff_page(request, ctx, staff, "subscribers.html", {"results": found.subscribers})


@router.get("/subscribers/{subscriber_id}")
async def subscriber(
    request: Request,
    subscriber_id: SubscriberId,
    staff: SubscriberPage,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
) -> Response:
    view = await views.read(tx, ctx, staff=staff, subscriber_id=subscriber_id, ip=ip)
    records = await provision.staff_read_records(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, after_seq=0, limit=100
    )
    redemptions = await coupons.redemptions_of(tx, subscriber_id=subscriber_id, limit=100)
    # Whether the subject stopped provision to third parties (and whom they consented to):
    # what a disclosure request for them will meet, seen before it is made.
    provision_state = await provision.provision_state(tx, ctx, subscriber_id=subscriber_id)
    context = {
        "view": view,
        "provision": provision_state,
        "records": records,
        "redemptions": redemptions,
        "may_reveal": staff.role in roles.PHONE_REVEAL,
        # The forms that take a subject's request about provision (app.console.provision).
        "may_handle": staff.role in roles.SUBJECT_REQUESTS,
        "channels": get_args(StaffChannel),
    }
    return staff_page(request, ctx, staff, "subscriber.html", context)


@router.post("/subscribers/{subscriber_id}/reveal")
async def reveal(
    request: Request,
    subscriber_id: SubscriberId,
    staff: RevealForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    reason: Annotated[str, Form(min_length=1, max_length=MAX_REASON * 2)],
) -> Response:
    shown = await service.reveal(
        tx, ctx, staff=staff, subscriber_id=subscriber_id, reason=reason, ip=ip
    )
    context = {"revealed": shown, "seconds": REVEAL_SECONDS}
    return staff_page(request, ctx, staff, "revealed.html", context)


@router.get("/access-log")
async def access_log_page(
    request: Request,
    staff: AccessLogPage,
    tx: TxDep,
    ctx: CtxDep,
    filters: Filters,
    cursor: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    page = await access_log.list_access(
        tx, ctx, staff=staff, filters=filters, cursor=cursor, limit=PAGE_SIZE
    )
    query = filters.model_dump(mode="json", exclude_none=True)
    context = {"page": page, "filters": query, "actions": ACTIONS}
    return staff_page(request, ctx, staff, "access_log.html", context)


@router.get("/access-log.csv")
async def access_log_csv(
    staff: AccessLogPage,
    tx: TxDep,
    ctx: CtxDep,
    db: DbDep,
    filters: Filters,
) -> StreamingResponse:
    stream = await access_log.begin_export(tx, ctx, db=db, staff=staff, filters=filters)
    return StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="access-log.csv"'},
    )
