"""/v1/subject-requests: the register of data subjects' requests, for staff.

Operators and privacy officers record requests received by phone, letter or in person and
close them (carrying them out); auditors read the register to check each was answered
by its due date.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Path, Query

from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.core.errors import InvalidInput
from app.core.http import ONE_VALUE_EACH, JsonRoute
from app.ledger.errors import SubjectNotFound
from app.staff.auth import STAFF_PROBLEMS, SubjectRequests, SubjectRequestsRead
from app.subject import handling, register
from app.subject.schemas import (
    SubjectRequestCreate,
    SubjectRequestDone,
    SubjectRequestPublic,
    SubjectRequestsPublic,
)

router = APIRouter(prefix="/v1/subject-requests", tags=["data subjects"], route_class=JsonRoute)
RequestId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^sjr_[A-Za-z0-9_\-]+$")]
_PROBLEMS: dict[int | str, dict[str, Any]] = {**STAFF_PROBLEMS, 422: InvalidInput.openapi()}


@router.post(
    "",
    status_code=201,
    responses={**_PROBLEMS, 404: SubjectNotFound.openapi()},
    summary="Record a subject's request received by phone, letter or in person",
)
async def record_subject_request(
    body: SubjectRequestCreate, staff: SubjectRequests, tx: TxDep, ctx: CtxDep, ip: ClientIp
) -> SubjectRequestPublic:
    return await register.record(tx, ctx, staff=staff, ip=ip, data=body)


@router.get(
    "",
    dependencies=[ONE_VALUE_EACH],
    responses=_PROBLEMS,
    summary="The register of subject requests: open ones by due date (the queue)",
)
async def list_subject_requests(
    staff: SubjectRequestsRead,
    tx: TxDep,
    ctx: CtxDep,
    status: Annotated[Literal["open", "done", "refused"] | None, Query()] = None,
    subject_id: Annotated[
        str | None, Query(max_length=40, pattern=r"^sub_[A-Za-z0-9_\-]+$")
    ] = None,
) -> SubjectRequestsPublic:
    found = await register.listing(tx, ctx, status=status, subject_id=subject_id)
    return SubjectRequestsPublic(requests=found)


@router.post(
    "/{request_id}/close",
    responses={
        **_PROBLEMS,
        404: register.RequestNotFound.openapi(),
        409: register.RequestClosed.openapi(),
    },
    summary="Close a subject request: carried out now (done) or refused, with a note",
    description="A request whose subscriber was erased since (by another request, or for "
    "dormancy) closes as done with nothing carried out: the erasure left nothing to act on.",
)
async def close_subject_request(
    request_id: RequestId,
    body: SubjectRequestDone,
    staff: SubjectRequests,
    tx: TxDep,
    ctx: CtxDep,
    db: DbDep,
    ip: ClientIp,
    background: BackgroundTasks,
) -> SubjectRequestPublic:
    closed = await handling.close(tx, ctx, staff=staff, ip=ip, request_id=request_id, data=body)
    background.add_task(db.checkpoint)  # after an erasure: empty SQLite's write-ahead log
    return closed
