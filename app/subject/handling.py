"""Staff closing a subject request received by phone, letter or in person: a request
closed as done is carried out then, in the same transaction, named as the staff member's
act for the subject (erasure included, whose receipt the request keeps)."""

from __future__ import annotations

from typing import Any

from app.core.context import Context
from app.core.errors import InvalidInput
from app.core.tx import Tx
from app.models.subject import SubjectRequest
from app.registry import access_log, free_text
from app.registry import service as registry
from app.staff.auth import Staff
from app.subject import erasure, register, service
from app.subject.schemas import RequestKind, SubjectRequestDone, SubjectRequestPublic
from app.subject.sessions import Subject

# The kinds staff carry out here; the others are answered outside the system (a letter
# with what is held, or a correction the subject makes by verifying the new number).
CARRIED_OUT = {
    RequestKind.ERASE,
    RequestKind.WITHDRAW_DELIVERY,
    RequestKind.STOP_USAGE,
    RequestKind.STOP_PROVISION,
    RequestKind.RESUME_PROVISION,
}


async def close(
    tx: Tx, ctx: Context, *, staff: Staff, ip: str, request_id: str, data: SubjectRequestDone
) -> SubjectRequestPublic:
    """Close an open request; carry it out first when it is closed as done."""
    # The note before anything is carried out: a subscriber's number typed there is
    # refused and kept as the staff member's search, which commits; nothing else may.
    note = await free_text.check_reason(tx, ctx, data.note, field="note", staff=staff, ip=ip)
    request = await register.open_request(tx, request_id)
    kind = RequestKind(request.kind)
    receipt: dict[str, Any] | None = None
    sid = request.subscriber_id
    if data.outcome == "done" and kind in CARRIED_OUT:
        if sid is None:
            raise InvalidInput.field(
                "outcome", "the request names no subscriber: record a new one that does"
            )
        # Erased since (by another of their requests, or for dormancy), the subscriber
        # has nothing left that the request would stop, withdraw or erase: it is done.
        # Read under the subscriber's lock, after an erasure in progress has committed.
        await registry.lock_subscribers(tx, [sid])
        if await registry.get(tx, sid) is not None:
            receipt = await _carry_out(tx, ctx, staff=staff, ip=ip, request=request, kind=kind)
    return await register.close(
        tx, ctx, staff=staff, request=request, outcome=data.outcome, note=note,
        receipt=receipt,
    )  # fmt: skip


async def _carry_out(
    tx: Tx, ctx: Context, *, staff: Staff, ip: str, request: SubjectRequest, kind: RequestKind
) -> dict[str, Any] | None:
    """Do what a request closed as done asks for its (registered) subscriber; an
    erasure's receipt."""
    sid = request.subscriber_id or ""
    await access_log.log_access(
        tx, ctx, staff=staff, ip=ip, subscriber_id=sid, action="subject_request",
        reason=f"{kind.value} carried out for the subject (request {request.id})",
    )  # fmt: skip
    subject = Subject(session_id="", subscriber_id=sid, expires_at=ctx.clock.now())
    if kind is RequestKind.ERASE:
        done = await erasure.erase(
            tx, ctx, subscriber_id=sid, actor=staff.actor, channel=request.channel,
            request_id=request.id, record=False,
        )  # fmt: skip
        return done.model_dump(mode="json")
    if kind is RequestKind.WITHDRAW_DELIVERY:
        await service.withdraw_delivery(tx, ctx, subject=subject, ip=None, actor=staff.actor)
    elif kind is RequestKind.STOP_USAGE:
        await service.stop_usage(tx, ctx, subject=subject, actor=staff.actor)
    else:
        action = "stop" if kind is RequestKind.STOP_PROVISION else "resume"
        await service.change_provision(tx, ctx, subject=subject, action=action, actor=staff.actor)
    return None
