"""/console/disclosures: the request form, approve or reject with a note, release once.

The same workflow as the API (app.ledger.workflow), under the same role sets. The form's
fields are checked by the API's own schema (DisclosureRequestCreate), so a bad field is
named just as the API names it. The released package holds the subjects' numbers and is
never stored: the release page (``no-store``) carries it once, as two downloads (JSON,
and CSV written formula-safe by the ledger's package builder).
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse

from app.console.auth import ConsoleForm, ConsoleRoles
from app.console.web import (
    SEND_AGAIN_IF_MEANT,
    Confirm,
    ConsoleRoute,
    FormSentAgain,
    Made,
    checked,
    confirmed,
    made_since_shown,
    refuse_sent_again,
    refused_form,
    staff_page,
)
from app.core.deps import ClientIp, CtxDep, TxDep
from app.core.errors import AppError
from app.ledger import workflow
from app.ledger.rules import DATA_ITEMS, LEGAL_BASES, RequestStatus
from app.ledger.schemas import Decision, DisclosureRequestCreate
from app.models.ledger import DisclosureRequest
from app.staff import accounts, roles
from app.staff.auth import Staff

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

Reader = Annotated[Staff, Depends(ConsoleRoles(roles.DISCLOSURE_READ))]
RequesterPage = Annotated[Staff, Depends(ConsoleRoles(roles.DISCLOSURE_REQUEST))]
RequesterForm = Annotated[Staff, Depends(ConsoleForm(roles.DISCLOSURE_REQUEST))]
DeciderForm = Annotated[Staff, Depends(ConsoleForm(roles.DISCLOSURE_DECIDE))]
RequestId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^dsr_[A-Za-z0-9_\-]+$")]
Text = Annotated[str, Form(max_length=4000)]
NoteField = Annotated[str, Form(max_length=2000)]
STATUSES = get_args(RequestStatus)


def _subjects(text: str) -> list[str]:
    # One id per line, or separated by spaces or commas, as people paste them.
    return [part for part in re.split(r"[\s,]+", text) if part]


@router.get("/disclosures")
async def list_page(
    request: Request,
    staff: Reader,
    tx: TxDep,
    ctx: CtxDep,
    status: Annotated[RequestStatus | None, Query()] = None,
) -> Response:
    found = await workflow.list_requests(tx, ctx, status=status, limit=200)
    context = {
        "requests": found,
        "status": status,
        "statuses": STATUSES,
        "may_request": staff.role in roles.DISCLOSURE_REQUEST,
    }
    return staff_page(request, ctx, staff, "disclosures.html", context)


@router.get("/disclosures/new")
async def request_form(request: Request, staff: RequesterPage, tx: TxDep, ctx: CtxDep) -> Response:
    made, _ = await workflow.made_by(tx, staff)
    context = {"bases": LEGAL_BASES, "items": DATA_ITEMS, "typed": {"data_items": []}}
    return staff_page(request, ctx, staff, "disclosure_new.html", {**context, "made": made})


def _request_made(made: DisclosureRequest) -> str:
    what = f"Disclosure request {made.id} (to {made.recipient_organisation}) was made by you"
    return f"{made_since_shown(what, made.requested_at)} {SEND_AGAIN_IF_MEANT}"


@router.post("/disclosures")
async def create(
    request: Request,
    staff: RequesterForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    recipient_organisation: Text,
    recipient_officer: Text,
    recipient_contact: Text,
    legal_basis: Text,
    purpose: Text,
    necessity_review: Text,
    subject_ids: Annotated[str, Form(max_length=50_000)],
    data_items: Annotated[list[str], Form(max_length=len(DATA_ITEMS))],
    request_reference: Text = "",
    made: Made = 0,
) -> Response:
    fields: dict[str, Any] = {
        "recipient": {
            "organisation": recipient_organisation,
            "officer": recipient_officer,
            "contact": recipient_contact,
        },
        "legal_basis": legal_basis,
        "purpose": purpose,
        "request_reference": request_reference,
        "data_items": data_items,
        "subject_ids": _subjects(subject_ids),
        "necessity_review": necessity_review,
    }
    try:  # nothing is written until it passes: refused, the form again, as typed
        data = checked(DisclosureRequestCreate, fields)
        await refuse_sent_again(
            tx, form="disclosure-request", actor=staff.actor, shown_after=made,
            made_by=lambda: workflow.made_by(tx, staff), said=_request_made,
        )  # fmt: skip
        await workflow.refusal_of(tx, ctx, staff=staff, ip=ip, data=data)
    except (RequestValidationError, AppError) as exc:
        recipient = {f"recipient_{name}": value for name, value in fields["recipient"].items()}
        typed = {**fields, **recipient, "subject_ids": subject_ids}
        # Refused as sent again, the form shown again sends the request if sent once more.
        made = exc.made if isinstance(exc, FormSentAgain) else made
        context = {"bases": LEGAL_BASES, "items": DATA_ITEMS, "typed": typed, "made": made}
        return refused_form(request, ctx, staff, "disclosure_new.html", context, exc)
    requested = await workflow.request(tx, ctx, staff=staff, ip=ip, data=data)
    return RedirectResponse(f"/console/disclosures/{requested.id}", status_code=303)


@router.get("/disclosures/{request_id}")
async def detail(
    request: Request, request_id: RequestId, staff: Reader, tx: TxDep, ctx: CtxDep
) -> Response:
    found = await workflow.get(tx, ctx, request_id=request_id)
    context: dict[str, Any] = {
        "r": found,
        "may_decide": staff.role in roles.DISCLOSURE_DECIDE and found.requested_by != staff.id,
        # Known before the decision, not only once an approval has recorded it.
        "stopped_now": await workflow.stopped_now(tx, found)
        if found.status in ("requested", "approved")
        else [],
        "gone_now": await workflow.gone_now(tx, found) if found.status == "approved" else [],
    }
    if staff.role in roles.STAFF_READ:  # those who may read the staff list: names, not ids
        actors = [f"staff:{who}" for who in (found.requested_by, found.decided_by) if who]
        named = await accounts.usernames_of(tx, ctx, actors)
        context["names"] = {actor.removeprefix("staff:"): name for actor, name in named.items()}
    return staff_page(request, ctx, staff, "disclosure.html", context)


async def _decide(
    tx: TxDep, ctx: CtxDep, staff: Staff, ip: str, request_id: str, note: str, *, approve: bool
) -> Response:
    decision = checked(Decision, {"note": note})
    await workflow.decide(
        tx, ctx, staff=staff, ip=ip, request_id=request_id, note=decision.note, approve=approve
    )
    return RedirectResponse(f"/console/disclosures/{request_id}", status_code=303)


@router.post("/disclosures/{request_id}/approve")
async def approve(
    request_id: RequestId,
    staff: DeciderForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    note: NoteField,
) -> Response:
    return await _decide(tx, ctx, staff, ip, request_id, note, approve=True)


@router.post("/disclosures/{request_id}/reject")
async def reject(
    request_id: RequestId,
    staff: DeciderForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    note: NoteField,
) -> Response:
    return await _decide(tx, ctx, staff, ip, request_id, note, approve=False)


def _download(media_type: str, content: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


@router.post("/disclosures/{request_id}/release")
async def release(
    request: Request,
    request_id: RequestId,
    staff: DeciderForm,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    confirm: Confirm = None,
) -> Response:
    confirmed(confirm)  # numbers leave for a third party: one slip must not send them
    done = await workflow.release(tx, ctx, staff=staff, request_id=request_id, ip=ip)
    context = {
        "done": done,
        "json_href": _download("application/json", done.package_json),
        "csv_href": _download("text/csv;charset=utf-8", done.package_csv),
    }
    return staff_page(request, ctx, staff, "released.html", context)
