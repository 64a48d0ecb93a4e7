"""/console/subject-requests: the register of data subjects' requests by phone, letter or
in person; recording one, and closing it (carried out, or refused, with a note).

The same services as /v1/subject-requests (app.subject.register, app.subject.handling),
under the same role sets: operators and privacy officers record and close requests,
auditors read the register. Closing a request as done carries it out exactly as the API
does (an erasure, a withdrawal, a stop of a use, a stop or resume of provision), named as
the staff member's act and audited in the same transaction; the other kinds are answered
outside the system and only recorded as answered. An erasure cannot be undone: its form
is a page of its own, sent only with its "I am sure" box ticked (refused otherwise,
``422`` naming ``confirm``), and it leads to the request's page, which shows the receipt.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from app.console.auth import ConsoleForm, ConsoleRoles
from app.console.dashboard import DUE_SOON
from app.console.web import (
    SEND_AGAIN_IF_MEANT,
    Confirm,
    ConsoleRoute,
    FormSentAgain,
    Made,
    checked,
    confirmed,
    made_since_shown,
    query_form,
    refuse_sent_again,
    refused_form,
    staff_page,
)
from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.core.errors import AppError
from app.models.subject import SubjectRequest
from app.my.texts import erased_words, kept_why
from app.staff import accounts, roles
from app.staff.auth import Staff
from app.subject import handling, register
from app.subject.schemas import (
    RequestKind,
    StaffChannel,
    SubjectRequestCreate,
    SubjectRequestDone,
    SubjectRequestPublic,
)

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

ReaderPage = Annotated[Staff, Depends(ConsoleRoles(roles.SUBJECT_REQUESTS_READ))]
HandlerPage = Annotated[Staff, Depends(ConsoleRoles(roles.SUBJECT_REQUESTS))]
HandlerForm = Annotated[Staff, Depends(ConsoleForm(roles.SUBJECT_REQUESTS))]
RequestId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^sjr_[A-Za-z0-9_\-]+$")]
# Bounded a little above the schema's own limits, which then name the field at fault.
Text = Annotated[str, Form(max_length=1000)]
Short = Annotated[str, Form(max_length=60)]
KINDS = tuple(kind.value for kind in RequestKind)
CHANNELS = get_args(StaffChannel)
STATUSES = ("open", "done", "refused", "all")
SUBJECT_ID = re.compile(r"sub_[A-Za-z0-9_\-]{1,36}")


class RegisterFilter(BaseModel):
    """The register page's filters: a status (the open queue unless another is asked
    for) and a subscriber, as the API's listing takes them."""

    status: Literal["open", "done", "refused", "all"] = "open"
    subject_id: str | None = Field(None, max_length=40, pattern=r"^sub_[A-Za-z0-9_\-]+$")


def _handles(staff: Staff) -> bool:
    return staff.role in roles.SUBJECT_REQUESTS


@router.get("/subject-requests")
async def list_page(request: Request, staff: ReaderPage, tx: TxDep, ctx: CtxDep) -> Response:
    filters = query_form(request, RegisterFilter)
    status = None if filters.status == "all" else filters.status
    # Open ones first by due date, then the latest answered: the register's own order.
    found = await register.listing(tx, ctx, status=status, subject_id=filters.subject_id)
    context = {
        "requests": found,
        "filters": filters,
        "statuses": STATUSES,
        "may_handle": _handles(staff),
        "limit": register.LIST_LIMIT,
        "due_soon": ctx.clock.now() + DUE_SOON,
    }
    return staff_page(request, ctx, staff, "subject_requests.html", context)


@router.get("/subject-requests/new")
async def new_form(request: Request, staff: HandlerPage, tx: TxDep, ctx: CtxDep) -> Response:
    # Opened from a subscriber's page, the form names that subscriber already.
    subject = request.query_params.get("subject_id", "")
    subject = subject if SUBJECT_ID.fullmatch(subject) else ""
    made, _ = await register.recorded_by(tx, staff)
    context = {"kinds": KINDS, "channels": CHANNELS, "subject_id": subject, "typed": {}}
    return staff_page(request, ctx, staff, "subject_request_new.html", {**context, "made": made})


def _request_recorded(made: SubjectRequest) -> str:
    what = f"Subject request {made.id} ({made.kind}) was recorded by you"
    return f"{made_since_shown(what, made.received_at)} {SEND_AGAIN_IF_MEANT}"


@router.post("/subject-requests")
async def record(
    request: Request,
    staff: HandlerForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    kind: Short,
    channel: Short,
    reason: Text,
    subject_id: Short = "",
    made: Made = 0,
) -> Response:
    fields = {
        "subject_id": subject_id.strip() or None,
        "kind": kind,
        "channel": channel,
        "reason": reason,
    }
    try:  # nothing is written until it passes: refused, the form again, as typed
        data = checked(SubjectRequestCreate, fields)
        await refuse_sent_again(
            tx, form="subject-request", actor=staff.actor, shown_after=made,
            made_by=lambda: register.recorded_by(tx, staff), said=_request_recorded,
        )  # fmt: skip
        await register.refusal_of(tx, ctx, data, staff=staff, ip=ip)
    except (RequestValidationError, AppError) as exc:
        # Refused as sent again, the form shown again records the request if sent once more.
        made = exc.made if isinstance(exc, FormSentAgain) else made
        context = {"kinds": KINDS, "channels": CHANNELS, "subject_id": subject_id,
                   "typed": fields, "made": made}  # fmt: skip
        return refused_form(request, ctx, staff, "subject_request_new.html", context, exc)
    recorded = await register.record(tx, ctx, staff=staff, ip=ip, data=data)
    return RedirectResponse(f"/console/subject-requests/{recorded.id}", status_code=303)


@router.get("/subject-requests/{request_id}")
async def detail(
    request: Request, request_id: RequestId, staff: ReaderPage, tx: TxDep, ctx: CtxDep
) -> Response:
    found = await register.get(tx, ctx, request_id=request_id)
    context = _detail(staff, found)
    if staff.role in roles.STAFF_READ:  # those who may read the staff list: names, not ids
        context["names"] = await accounts.usernames_of(tx, ctx, [found.recorded_by, found.done_by])
    return staff_page(request, ctx, staff, "subject_request.html", context)


def _detail(staff: Staff, found: SubjectRequestPublic) -> dict[str, object]:
    """A request's page: what the signed-in role may do with it, and which kinds closing
    as done carries out (the rest are answered outside the system)."""
    return {
        "r": found,
        "may_handle": _handles(staff),
        "may_read_subscriber": staff.role in roles.SUBSCRIBER_READ,
        "carried_out": {kind.value for kind in handling.CARRIED_OUT},
        "erased_words": erased_words,
        "kept_why": kept_why,
    }


@router.get("/subject-requests/{request_id}/erase")
async def erase_form(
    request: Request, request_id: RequestId, staff: HandlerPage, tx: TxDep, ctx: CtxDep
) -> Response:
    """The erasure's own page: what goes and what is kept, before anything is done."""
    found = await register.get(tx, ctx, request_id=request_id)
    if found.status != "open" or found.kind is not RequestKind.ERASE:
        return RedirectResponse(f"/console/subject-requests/{request_id}", status_code=303)
    return staff_page(request, ctx, staff, "subject_request_erase.html", {"r": found})


@router.post("/subject-requests/{request_id}/close")
async def close(
    request: Request,
    request_id: RequestId,
    staff: HandlerForm,
    tx: TxDep,
    ctx: CtxDep,
    db: DbDep,
    ip: ClientIp,
    background: BackgroundTasks,
    outcome: Short,
    note: Text,
    confirm: Confirm = None,
) -> Response:
    data = checked(SubjectRequestDone, {"outcome": outcome, "note": note})
    erasing = data.outcome == "done" and (
        (await register.get(tx, ctx, request_id=request_id)).kind is RequestKind.ERASE
    )
    if erasing:
        confirmed(confirm)  # nothing is written without the box ticked
    await handling.close(tx, ctx, staff=staff, ip=ip, request_id=request_id, data=data)
    if erasing:
        background.add_task(db.checkpoint)  # as the API: empty SQLite's write-ahead log
    # The request's page, which shows an erasure's receipt (the register keeps it): a
    # reload shows it again, where an answer to this form would post it again.
    return RedirectResponse(f"/console/subject-requests/{request_id}", status_code=303)
