"""Staff routes on the registry (the privacy officer's reveal) and the access log.

The masked search and read show a subscriber's consent too, so they are composed above
the registry, in app/consent/staff_routes.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.core.errors import InvalidInput
from app.core.http import NO_STORE, ONE_VALUE_EACH, JsonRoute
from app.models.types import MAX_INTEGER
from app.registry import access_log, service
from app.registry.schemas import AccessLogFilter, AccessLogPage, RevealedPublic, RevealRequest
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.staff.auth import STAFF_PROBLEMS, AccessLogRead, PhoneReveal

router = APIRouter(prefix="/v1/subscribers", tags=["registry"], route_class=JsonRoute)
access_log_router = APIRouter(prefix="/v1", tags=["access log"], route_class=JsonRoute)
Filters = Annotated[AccessLogFilter, Query()]


@router.post(
    "/{subscriber_id}/reveal",
    responses={
        **STAFF_PROBLEMS,
        404: service.SubscriberNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="The full number, with a stated reason (privacy officer only); logged",
)
async def reveal_number(
    subscriber_id: SubscriberId,
    body: RevealRequest,
    staff: PhoneReveal,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    response: Response,
) -> RevealedPublic:
    revealed = await service.reveal(
        tx, ctx, staff=staff, subscriber_id=subscriber_id, reason=body.reason, ip=ip
    )
    response.headers.update(NO_STORE)
    return revealed


@access_log_router.get(
    "/access-log",
    dependencies=[ONE_VALUE_EACH],
    responses={**STAFF_PROBLEMS, 422: InvalidInput.openapi()},
    summary="The access log, newest first, filtered and paged (auditor, privacy officer)",
)
async def list_access_log(
    staff: AccessLogRead,
    tx: TxDep,
    ctx: CtxDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_INTEGER, description="next_cursor of the last page")
    ] = None,
) -> AccessLogPage:
    return await access_log.list_access(
        tx, ctx, staff=staff, filters=filters, cursor=cursor, limit=limit
    )


@access_log_router.get(
    "/access-log.csv",
    dependencies=[ONE_VALUE_EACH],
    response_class=StreamingResponse,
    responses={
        **STAFF_PROBLEMS,
        422: InvalidInput.openapi(),
        200: {"content": {"text/csv": {}}, "description": "the entries, oldest first"},
    },
    summary="Export the access log as CSV, streamed, oldest first (auditor, privacy officer)",
)
async def export_access_log(
    staff: AccessLogRead, tx: TxDep, ctx: CtxDep, db: DbDep, filters: Filters
) -> StreamingResponse:
    # Authorised and audited in the request's transaction, which commits before the
    # first byte; the rows are then read in short transactions of their own.
    stream = await access_log.begin_export(tx, ctx, db=db, staff=staff, filters=filters)
    return StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8",
        headers={**NO_STORE, "Content-Disposition": 'attachment; filename="access-log.csv"'},
    )
