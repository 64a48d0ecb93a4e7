"""Staff routes of the disclosure ledger: the request -> approval -> release workflow,
the auditors' export and verification, and subjects' requests about provision.

Every route authenticates its staff session inside the unit of work of its action
(see app/staff/auth.py); the long reads (export, verify) authorise first in a short
transaction and then read from a snapshot of their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from app.core.context import Context
from app.core.db import Row, Tx
from app.core.deps import request_ip, runtime_of
from app.core.errors import AUTH_PROBLEMS, AppError, InvalidInput
from app.core.http import NO_STORE
from app.ledger import auditor, checkpoints, errors, export, provision, workflow
from app.registry.schemas import SubscriberIdPath as SubscriberId
from app.registry.service import log_access
from app.staff.accounts import Staff
from app.staff.auth import (
    DisclosureDecider,
    DisclosureReader,
    DisclosureRequester,
    LedgerAuditor,
    SubjectRequests,
    as_staff,
)

router = APIRouter(prefix="/v1", tags=["disclosure ledger"])
RequestId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^dsr_[A-Za-z0-9_\-]+$")]


class DisclosurePublic(BaseModel):
    """A disclosure request as staff see it: subject ids, never numbers."""

    id: str
    status: str
    recipient_organisation: str
    recipient_officer: str
    recipient_contact: str
    legal_basis: str
    purpose: str
    request_reference: str | None = None
    data_items: list[str]
    subject_ids: list[str]
    necessity_review: str
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    decision_note: str | None = None
    released_by: str | None = None
    released_at: dt.datetime | None = None
    ledger_seq: int | None = None


class DisclosureList(BaseModel):
    requests: list[DisclosurePublic]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=3, max_length=2000, description="why it is approved or rejected")


class ReleasePublic(BaseModel):
    """The released package, shown once: it holds the subjects' numbers."""

    request_id: str
    ledger_seq: int
    package_sha256: str
    package: dict[str, Any] = Field(
        description="the package as JSON (its SHA-256 is in the ledger)"
    )
    package_csv: str = Field(description="the same package as CSV")


class ProvisionStopChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["stop", "resume"]
    source: str = Field(
        min_length=1, max_length=40, description="how the subject asked, e.g. phone"
    )


class ProvisionConsentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["give", "withdraw"]
    recipient: str = Field(min_length=1, max_length=200, description="the recipient organisation")
    source: str = Field(min_length=1, max_length=40, description="how the subject consented")


def _actor(staff: Staff) -> workflow.Actor:
    return workflow.Actor(staff_id=staff.id, role=staff.role.value)


def _public(row: Row) -> DisclosurePublic:
    values = dict(row)
    for name in ("data_items", "subject_ids"):
        if isinstance(values[name], str):
            values[name] = orjson.loads(values[name])
    return DisclosurePublic(**values)


def _request(
    tx: Tx, ctx: Context, *, staff: Staff, data: workflow.DisclosureRequestCreate
) -> DisclosurePublic:
    return _public(workflow.request(tx, ctx, actor=_actor(staff), data=data))


def _decide(
    tx: Tx, ctx: Context, *, staff: Staff, request_id: str, note: str, approve: bool
) -> DisclosurePublic:
    step = workflow.approve if approve else workflow.reject
    step(tx, ctx, actor=_actor(staff), request_id=request_id, note=note)
    return _public(workflow.get(tx, request_id=request_id))


def _release(tx: Tx, ctx: Context, *, staff: Staff, request_id: str, ip: str) -> ReleasePublic:
    done = workflow.release(tx, ctx, actor=_actor(staff), request_id=request_id)
    # The package holds full numbers: like a reveal, each subject's appears in the access
    # log, in the transaction that appends the ledger entry.
    items, subjects = (
        orjson.loads(v) if isinstance(v, str) else v
        for v in (done.entry["data_items"], done.entry["subject_ids"])
    )
    if "phone_number" in items:
        for subject in subjects:
            log_access(
                tx,
                ctx,
                staff=staff,
                ip=ip,
                subscriber_id=subject,
                action="disclosure_release",
                reason=f"disclosure {done.request_id}, ledger entry {done.entry['seq']}",
            )
    return ReleasePublic(
        request_id=done.request_id,
        ledger_seq=done.entry["seq"],
        package_sha256=done.entry["package_sha256"],
        package=orjson.loads(done.package_json),
        package_csv=done.package_csv.decode(),
    )


def _read(tx: Tx, ctx: Context, *, staff: Staff, request_id: str) -> DisclosurePublic:
    return _public(workflow.get(tx, request_id=request_id))


def _list(tx: Tx, ctx: Context, *, staff: Staff, status: str | None, limit: int) -> DisclosureList:
    rows = workflow.list_requests(tx, status=status, limit=limit)
    return DisclosureList(requests=[_public(row) for row in rows])


def _who(tx: Tx, ctx: Context, *, staff: Staff) -> Staff:
    return staff


_WORKFLOW_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_PROBLEMS,
    404: workflow.RequestNotFound.openapi(),
    409: workflow.WrongState.openapi(),
    422: InvalidInput.openapi(),
}


@router.post(
    "/disclosures",
    status_code=201,
    responses={**AUTH_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Ask to provide subjects' data to a third party (operator, privacy officer)",
)
async def create_disclosure(
    body: workflow.DisclosureRequestCreate, caller: DisclosureRequester, request: Request
) -> DisclosurePublic:
    rt = runtime_of(request)
    return await rt.db.run(as_staff, rt.ctx, caller=caller, action=_request, data=body)


@router.get(
    "/disclosures",
    responses={**AUTH_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Disclosure requests, newest first (operator, privacy officer, auditor)",
)
async def list_disclosures(
    caller: DisclosureReader,
    request: Request,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DisclosureList:
    rt = runtime_of(request)
    return await rt.db.run(
        as_staff, rt.ctx, caller=caller, action=_list, status=status, limit=limit
    )


@router.get(
    "/disclosures/{request_id}",
    responses={
        **AUTH_PROBLEMS,
        404: workflow.RequestNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="One disclosure request (operator, privacy officer, auditor)",
)
async def read_disclosure(
    request_id: RequestId, caller: DisclosureReader, request: Request
) -> DisclosurePublic:
    rt = runtime_of(request)
    return await rt.db.run(as_staff, rt.ctx, caller=caller, action=_read, request_id=request_id)


@router.post(
    "/disclosures/{request_id}/approve",
    responses=_WORKFLOW_ERRORS,
    summary="Approve a request after weighing its necessity (a privacy officer, not the requester)",
)
async def approve_disclosure(
    request_id: RequestId, body: Decision, caller: DisclosureDecider, request: Request
) -> DisclosurePublic:
    rt = runtime_of(request)
    return await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=_decide,
        request_id=request_id,
        note=body.note,
        approve=True,
    )


@router.post(
    "/disclosures/{request_id}/reject",
    responses=_WORKFLOW_ERRORS,
    summary="Reject a request (a privacy officer, not the requester)",
)
async def reject_disclosure(
    request_id: RequestId, body: Decision, caller: DisclosureDecider, request: Request
) -> DisclosurePublic:
    rt = runtime_of(request)
    return await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=_decide,
        request_id=request_id,
        note=body.note,
        approve=False,
    )


@router.post(
    "/disclosures/{request_id}/release",
    responses=_WORKFLOW_ERRORS,
    summary="Build the package and append its ledger entry, once (privacy officer)",
)
async def release_disclosure(
    request_id: RequestId, caller: DisclosureDecider, request: Request, response: Response
) -> ReleasePublic:
    rt = runtime_of(request)
    released = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=_release,
        request_id=request_id,
        ip=request_ip(request),
    )
    response.headers.update(NO_STORE)
    return released


@router.get(
    "/ledger/export",
    responses={
        **AUTH_PROBLEMS,
        422: InvalidInput.openapi(),
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}},
    },
    response_class=StreamingResponse,
    summary="Export the ledger as JSON Lines or CSV, streamed, verifiable offline (auditor, "
    "privacy officer)",
)
async def export_ledger(
    caller: LedgerAuditor,
    request: Request,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",  # noqa: A002 (the API's name)
    since: Annotated[dt.datetime | None, Query()] = None,
    until: Annotated[dt.datetime | None, Query()] = None,
    recipient: Annotated[str | None, Query(max_length=200)] = None,
    basis: Annotated[str | None, Query(max_length=40)] = None,
    subject: Annotated[str | None, Query(max_length=40)] = None,
) -> StreamingResponse:
    rt = runtime_of(request)
    staff = await rt.db.run(as_staff, rt.ctx, caller=caller, action=_who)
    filters = export.Filters(
        since=since, until=until, recipient=recipient, legal_basis=basis, subject_id=subject
    )
    # The export records its audit event in a short transaction of its own: off the loop.
    chunks = await anyio.to_thread.run_sync(
        lambda: auditor.export_ledger(rt.db, rt.ctx, actor=staff.actor, filters=filters, fmt=format)
    )
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    name = f"smsreg-ledger.{'jsonl' if format == 'jsonl' else 'csv'}"
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/ledger/verify",
    responses=AUTH_PROBLEMS,
    summary="Walk the chain and check every checkpoint signature (auditor, privacy officer)",
)
async def verify_ledger(caller: LedgerAuditor, request: Request) -> dict[str, Any]:
    rt = runtime_of(request)
    staff = await rt.db.run(as_staff, rt.ctx, caller=caller, action=_who)
    report = await anyio.to_thread.run_sync(
        lambda: auditor.verify_ledger(rt.db, rt.ctx, actor=staff.actor)
    )
    return report.as_dict()


class CheckpointPublic(BaseModel):
    """A signed checkpoint: the head it commits to, when, and the signature."""

    id: int
    kind: str
    seq: int
    head_hash: str
    created_at: dt.datetime
    key_id: str
    signature: str = Field(description="base64 Ed25519 signature; keys at /v1/ledger/public-keys")


class EmptyLedger(AppError):
    status = 409
    slug = "ledger-empty"
    title = "The ledger has no entry to commit to yet"


def _checkpoint(tx: Tx, ctx: Context, *, staff: Staff) -> CheckpointPublic:
    row = checkpoints.create(tx, ctx, actor=staff.actor, force=True)
    if row is None:
        raise EmptyLedger()
    return CheckpointPublic(**row)


@router.post(
    "/ledger/checkpoints",
    status_code=201,
    responses={**AUTH_PROBLEMS, 409: EmptyLedger.openapi()},
    summary="Sign a checkpoint committing to the ledger's head now (auditor, privacy officer)",
)
async def create_checkpoint(caller: LedgerAuditor, request: Request) -> CheckpointPublic:
    rt = runtime_of(request)
    return await rt.db.run(as_staff, rt.ctx, caller=caller, action=_checkpoint)


def _subject_stop(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    subscriber_id: str,
    change: ProvisionStopChange,
    ip: str,
) -> dict[str, Any]:
    step = provision.stop_provision if change.action == "stop" else provision.resume_provision
    step(tx, ctx, subscriber_id=subscriber_id, actor=staff.actor, source=change.source)
    log_access(
        tx,
        ctx,
        staff=staff,
        ip=ip,
        subscriber_id=subscriber_id,
        action="provision_change",
        reason=f"{change.action} third-party provision (source: {change.source})",
    )
    return provision.provision_state(tx, subscriber_id=subscriber_id)


def _subject_consent(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    subscriber_id: str,
    change: ProvisionConsentChange,
    ip: str,
) -> dict[str, Any]:
    step = provision.give_consent if change.action == "give" else provision.withdraw_consent
    step(
        tx,
        ctx,
        subscriber_id=subscriber_id,
        actor=staff.actor,
        recipient=change.recipient,
        source=change.source,
    )
    log_access(
        tx,
        ctx,
        staff=staff,
        ip=ip,
        subscriber_id=subscriber_id,
        action="provision_change",
        reason=f"{change.action} consent to provide to {change.recipient[:100]} "
        f"(source: {change.source})",
    )
    return provision.provision_state(tx, subscriber_id=subscriber_id)


def _subject_state(
    tx: Tx, ctx: Context, *, staff: Staff, subscriber_id: str, ip: str
) -> dict[str, Any]:
    state = provision.provision_state(tx, subscriber_id=subscriber_id)
    log_access(tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, action="provision_read")
    return state


def _subject_records(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    subscriber_id: str,
    after_seq: int,
    limit: int,
    ip: str,
) -> dict[str, Any]:
    records = provision.subject_records(
        tx, subscriber_id=subscriber_id, after_seq=after_seq, limit=limit
    )
    log_access(tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, action="disclosures_read")
    return {"subscriber_id": subscriber_id, "records": records}


_SUBJECT_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_PROBLEMS,
    404: errors.SubjectNotFound.openapi(),
    422: InvalidInput.openapi(),
}


@router.get(
    "/subscribers/{subscriber_id}/third-party-provision",
    responses=_SUBJECT_ERRORS,
    summary="A subject's stop of third-party provision and consents to recipients "
    "(operator, privacy officer)",
)
async def read_provision(
    subscriber_id: SubscriberId, caller: SubjectRequests, request: Request
) -> dict[str, Any]:
    rt = runtime_of(request)
    return await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=_subject_state,
        subscriber_id=subscriber_id,
        ip=request_ip(request),
    )


@router.post(
    "/subscribers/{subscriber_id}/third-party-provision",
    responses=_SUBJECT_ERRORS,
    summary="Record a subject's request to stop (or resume) third-party provision, APPI Art. 35",
)
async def change_provision(
    subscriber_id: SubscriberId,
    body: ProvisionStopChange,
    caller: SubjectRequests,
    request: Request,
) -> dict[str, Any]:
    rt = runtime_of(request)
    return await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=_subject_stop,
        subscriber_id=subscriber_id,
        change=body,
        ip=request_ip(request),
    )


@router.post(
    "/subscribers/{subscriber_id}/provision-consents",
    responses=_SUBJECT_ERRORS,
    summary="Record a subject's consent to (or withdrawal from) provision to one recipient",
)
async def change_provision_consent(
    subscriber_id: SubscriberId,
    body: ProvisionConsentChange,
    caller: SubjectRequests,
    request: Request,
) -> dict[str, Any]:
    rt = runtime_of(request)
    return await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=_subject_consent,
        subscriber_id=subscriber_id,
        change=body,
        ip=request_ip(request),
    )


@router.get(
    "/subscribers/{subscriber_id}/disclosures",
    responses=_SUBJECT_ERRORS,
    summary="The disclosure records about one subject, for their request (APPI Art. 33(5))",
)
async def subject_disclosures(
    subscriber_id: SubscriberId,
    caller: SubjectRequests,
    request: Request,
    response: Response,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rt = runtime_of(request)
    found = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=_subject_records,
        subscriber_id=subscriber_id,
        after_seq=after_seq,
        limit=limit,
        ip=request_ip(request),
    )
    response.headers.update(NO_STORE)
    return found
