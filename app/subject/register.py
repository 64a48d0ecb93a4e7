"""The register of subject requests: every request a subject makes, with its due date.

Requests made on the self-service pages are carried out at once and recorded done.
Requests by phone, letter or in person are recorded by staff with what was asked; they
stay open (the queue) until a staff member closes them, and each is due within
``subject_request_due_days`` (Korea's PIPA: 10 days). Auditors list them all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError, NotFound
from app.core.ids import new_id
from app.core.tx import Tx
from app.models.subject import SubjectRequest
from app.registry import access_log
from app.registry import service as registry
from app.registry.free_text import check_reason
from app.registry.service import SubscriberNotFound
from app.staff.auth import Staff
from app.subject import repository as repo
from app.subject.schemas import (
    ErasureReceiptPublic,
    RequestKind,
    SubjectRequestCreate,
    SubjectRequestPublic,
)

LIST_LIMIT = 500


class RequestNotFound(NotFound):
    slug = "subject-request-not-found"
    title = "No such subject request"


class RequestClosed(AppError):
    status = 409
    slug = "subject-request-closed"
    title = "The subject request is already closed"


def public(ctx: Context, request: SubjectRequest) -> SubjectRequestPublic:
    """A request as the register shows it, with whether it is overdue now."""
    overdue = request.status == "open" and request.due_at <= ctx.clock.now()
    return SubjectRequestPublic(
        id=request.id,
        subject_id=request.subscriber_id,
        kind=RequestKind(request.kind),
        channel=request.channel,
        reason=request.reason,
        status=request.status,
        received_at=request.received_at,
        due_at=request.due_at,
        overdue=overdue,
        recorded_by=request.recorded_by,
        done_at=request.done_at,
        done_by=request.done_by,
        note=request.note,
        receipt=request.receipt,
    )


async def record_done(
    tx: Tx,
    ctx: Context,
    *,
    subscriber_id: str,
    kind: RequestKind,
    actor: str,
    channel: str = "self_service",
    receipt: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> SubjectRequest:
    """Record a request carried out at once (self-service, or by the retention job)."""
    now = ctx.clock.now()
    request = SubjectRequest(
        id=request_id or new_id("sjr"),
        subscriber_id=subscriber_id,
        kind=kind.value,
        channel=channel,
        status="done",
        received_at=now,
        due_at=now,
        recorded_by=actor,
        done_at=now,
        done_by=actor,
        receipt=receipt,
    )
    await repo.insert_request(tx, request)
    return request


async def refusal_of(
    tx: Tx, ctx: Context, data: SubjectRequestCreate, *, staff: Staff, ip: str
) -> str:
    """What :func:`record` would refuse in ``data`` (InvalidInput on the reason, or an
    unknown subscriber), checked before anything is written; the reason, cleaned. A form
    asks first, so that it can be shown again as typed."""
    # Never a phone number in the register; a subscriber's typed there is kept as a search.
    reason = await check_reason(tx, ctx, data.reason, staff=staff, ip=ip)
    if data.subject_id is not None and await registry.get(tx, data.subject_id) is None:
        raise SubscriberNotFound()
    return reason


async def record(
    tx: Tx, ctx: Context, *, staff: Staff, ip: str, data: SubjectRequestCreate
) -> SubjectRequestPublic:
    """Record a request received by another channel; open until done, due in N days."""
    reason = await refusal_of(tx, ctx, data, staff=staff, ip=ip)
    now = ctx.clock.now()
    request = SubjectRequest(
        id=new_id("sjr"),
        subscriber_id=data.subject_id,
        kind=data.kind.value,
        channel=data.channel,
        reason=reason,
        status="open",
        received_at=now,
        due_at=now + dt.timedelta(days=ctx.settings.subject_request_due_days),
        recorded_by=staff.actor,
    )
    await repo.insert_request(tx, request)
    await record_event(
        tx,
        Tag.SUBJECT_REQUEST_RECORDED,
        actor=staff.actor,
        at=now,
        subject=request.id,
        details={"kind": request.kind, "channel": request.channel},
    )
    if data.subject_id is not None:
        await access_log.log_access(
            tx,
            ctx,
            staff=staff,
            ip=ip,
            subscriber_id=data.subject_id,
            action="subject_request",
            reason=f"{request.kind} request by {request.channel}",
        )
    return public(ctx, request)


async def recorded_by(tx: Tx, staff: Staff) -> tuple[int, SubjectRequest | None]:
    """How many subject requests ``staff`` recorded, and the newest."""
    return await repo.requests_recorded_by(tx, staff.actor)


async def erasure_receipt(tx: Tx, request_id: str) -> ErasureReceiptPublic | None:
    """The receipt of the self-service erasure recorded as ``request_id``, for the page
    that shows it again to the browser that erased (None: no such erasure)."""
    request = await repo.get_request(tx, request_id)
    if (
        request is None
        or request.kind != RequestKind.ERASE.value
        or request.channel != "self_service"
        or request.receipt is None
    ):
        return None
    return ErasureReceiptPublic.model_validate(request.receipt)


async def open_request(tx: Tx, request_id: str) -> SubjectRequest:
    """An open request, locked (RequestNotFound, RequestClosed otherwise)."""
    request = await repo.get_request(tx, request_id, lock=True)
    if request is None:
        raise RequestNotFound()
    if request.status != "open":
        raise RequestClosed()
    return request


async def close(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    request: SubjectRequest,
    outcome: str,
    note: str,
    receipt: dict[str, Any] | None = None,
) -> SubjectRequestPublic:
    """Close an open request as done or refused, with a note (and an erasure's receipt).
    The note is the one ``check_reason`` answered: app.subject.handling checks it before
    the request is carried out, so that its refusal can never follow a write."""
    now = ctx.clock.now()
    values: dict[str, Any] = {
        "status": outcome,
        "done_at": now,
        "done_by": staff.actor,
        "note": note,
        "receipt": receipt,
    }
    if not await repo.close_request(tx, request_id=request.id, values=values):
        raise RequestClosed()
    await record_event(
        tx,
        Tag.SUBJECT_REQUEST_CLOSED,
        actor=staff.actor,
        at=now,
        subject=request.id,
        details={"kind": request.kind, "outcome": outcome},
    )
    return public(ctx, request.model_copy(update=values))


async def get(tx: Tx, ctx: Context, *, request_id: str) -> SubjectRequestPublic:
    """One request of the register, open or closed (RequestNotFound otherwise)."""
    request = await repo.get_request(tx, request_id)
    if request is None:
        raise RequestNotFound()
    return public(ctx, request)


async def listing(
    tx: Tx, ctx: Context, *, status: str | None, subject_id: str | None
) -> list[SubjectRequestPublic]:
    """The register, open requests by due date first (the queue)."""
    found = await repo.list_requests(tx, status=status, subscriber_id=subject_id, limit=LIST_LIMIT)
    return [public(ctx, request) for request in found]
