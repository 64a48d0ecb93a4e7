"""Staff routes on the registry (masked search and read, reveal) and the access log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from app.core.deps import request_ip, runtime_of
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.core.http import NO_STORE
from app.registry import service
from app.registry.repository import AccessFilter
from app.registry.schemas import (
    AccessAction,
    AccessLogPage,
    RevealedPublic,
    RevealRequest,
    SubscriberSearch,
    SubscriberSearchResult,
    SubscriberStaffView,
)
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.staff.auth import AccessLogRead, PhoneReveal, SubscriberRead, as_staff

router = APIRouter(prefix="/v1/subscribers", tags=["registry"])
access_log_router = APIRouter(prefix="/v1", tags=["access log"])


@router.post(
    "/search",
    responses={**AUTH_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Find a subscriber by number, masked (operator, privacy officer); logged",
)
async def search_subscribers(
    body: SubscriberSearch, caller: SubscriberRead, request: Request, response: Response
) -> SubscriberSearchResult:
    rt = runtime_of(request)
    found = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=service.search_by_number,
        phone=body.phone,
        ip=request_ip(request),
    )
    response.headers.update(NO_STORE)
    return SubscriberSearchResult(subscribers=found)


@router.get(
    "/{subscriber_id}",
    responses={
        **AUTH_PROBLEMS,
        404: service.SubscriberNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="A subscriber, masked, with purposes and consent (operator, privacy officer); logged",
)
async def read_subscriber(
    subscriber_id: SubscriberId, caller: SubscriberRead, request: Request, response: Response
) -> SubscriberStaffView:
    rt = runtime_of(request)
    view = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=service.read,
        subscriber_id=subscriber_id,
        ip=request_ip(request),
    )
    response.headers.update(NO_STORE)
    return view


@router.post(
    "/{subscriber_id}/reveal",
    responses={
        **AUTH_PROBLEMS,
        404: service.SubscriberNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="The full number, with a stated reason (privacy officer only); logged",
)
async def reveal_number(
    subscriber_id: SubscriberId,
    body: RevealRequest,
    caller: PhoneReveal,
    request: Request,
    response: Response,
) -> RevealedPublic:
    rt = runtime_of(request)
    revealed = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=service.reveal,
        subscriber_id=subscriber_id,
        reason=body.reason,
        ip=request_ip(request),
    )
    response.headers.update(NO_STORE)
    return revealed


StaffIdFilter = Annotated[
    str | None, Query(max_length=40, pattern=r"^stf_[A-Za-z0-9_\-]+$", description="one account")
]
SubscriberIdFilter = Annotated[
    str | None, Query(max_length=40, pattern=r"^sub_[A-Za-z0-9_\-]+$", description="one subject")
]
Since = Annotated[AwareDatetime | None, Query(description="from this instant (inclusive)")]
Until = Annotated[AwareDatetime | None, Query(description="to this instant (exclusive)")]
ActionFilter = Annotated[AccessAction | None, Query()]


@access_log_router.get(
    "/access-log",
    responses={**AUTH_PROBLEMS, 422: InvalidInput.openapi()},
    summary="The access log, newest first, filtered and paged (auditor)",
)
async def list_access_log(
    caller: AccessLogRead,
    request: Request,
    since: Since = None,
    until: Until = None,
    staff_id: StaffIdFilter = None,
    subscriber_id: SubscriberIdFilter = None,
    action: ActionFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor of the last page")] = None,
) -> AccessLogPage:
    rt = runtime_of(request)
    flt = AccessFilter(
        since=since, until=until, staff_id=staff_id, subscriber_id=subscriber_id, action=action
    )
    return await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=service.list_access,
        flt=flt,
        cursor=cursor,
        limit=limit,
    )


@access_log_router.get(
    "/access-log.csv",
    response_class=StreamingResponse,
    responses={
        **AUTH_PROBLEMS,
        422: InvalidInput.openapi(),
        200: {"content": {"text/csv": {}}, "description": "the entries, oldest first"},
    },
    summary="Export the access log as CSV, streamed, oldest first (auditor)",
)
async def export_access_log(
    caller: AccessLogRead,
    request: Request,
    since: Since = None,
    until: Until = None,
    staff_id: StaffIdFilter = None,
    subscriber_id: SubscriberIdFilter = None,
    action: ActionFilter = None,
) -> StreamingResponse:
    rt = runtime_of(request)
    flt = AccessFilter(
        since=since, until=until, staff_id=staff_id, subscriber_id=subscriber_id, action=action
    )
    # Authorised and audited before the first byte, so a refusal is a proper 401/403.
    upto = await rt.db.run(as_staff, rt.ctx, caller=caller, action=service.begin_export, flt=flt)
    return StreamingResponse(
        service.export_csv(rt.db, flt, upto_id=upto),
        media_type="text/csv; charset=utf-8",
        headers={**NO_STORE, "Content-Disposition": 'attachment; filename="access-log.csv"'},
    )
