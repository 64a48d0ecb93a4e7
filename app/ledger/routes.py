"""/v1/disclosures and /v1/ledger: the request -> approval -> release workflow, the
auditors' export, verification and checkpoints, and the public keys (anonymous)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.core.errors import AppError, DatabaseUnavailable, InvalidInput, header_entries
from app.core.http import NO_STORE, ONE_VALUE_EACH, JsonRoute, created, created_answer
from app.core.openapi import NO_DATABASE, problems
from app.ledger import auditor, checkpoints, signing, workflow
from app.ledger.audit_schemas import (
    CheckpointPublic,
    ExportQuery,
    PublicKeyPublic,
    PublicKeysPublic,
    VerifyReportPublic,
)
from app.ledger.errors import (
    AlreadyReleased,
    ConsentMissing,
    DependentApprover,
    EmptyLedger,
    LedgerCut,
    LedgerRewritten,
    LedgerUncovered,
    ProvisionStopped,
    RequestNotFound,
    SelfApproval,
    SubjectGone,
    UnbackedEntry,
    WitnessUnavailable,
    WrongState,
)
from app.ledger.rules import RequestStatus
from app.ledger.schemas import (
    Decision,
    DisclosureList,
    DisclosurePublic,
    DisclosureRequestCreate,
    ReleasePublic,
)
from app.staff.auth import (
    STAFF_PROBLEMS,
    STAFF_REFUSALS,
    DisclosureDecider,
    DisclosureReader,
    DisclosureRequester,
    LedgerAuditor,
    LedgerExporter,
)

router = APIRouter(prefix="/v1", tags=["disclosure ledger"], route_class=JsonRoute)
# Anonymous: anyone may fetch the keys that verify an export.
keys_router = APIRouter(prefix="/v1/ledger", tags=["ledger"], route_class=JsonRoute)
RequestId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^dsr_[A-Za-z0-9_\-]+$")]

# What deciding on a request answers (approve, reject), and releasing it besides.
_DECIDING: tuple[type[AppError], ...] = (
    *STAFF_REFUSALS,
    SelfApproval,
    DependentApprover,
    RequestNotFound,
    WrongState,
)
# What the subjects' checks answer on an approval and a release (app.ledger.subject_checks).
_SUBJECT_CHECKS: tuple[type[AppError], ...] = (ProvisionStopped, ConsentMissing)
_RELEASE_PROBLEMS = problems(
    *STAFF_REFUSALS,
    SelfApproval,
    RequestNotFound,
    WrongState,
    AlreadyReleased,
    SubjectGone,
    *_SUBJECT_CHECKS,
)


@router.post(
    "/disclosures",
    status_code=201,
    responses={
        201: created_answer("the request's path, `/v1/disclosures/{id}`, which reads it"),
        **problems(*STAFF_REFUSALS, ProvisionStopped, ConsentMissing),
    },
    summary="Ask to provide subjects' data to a third party (operator, privacy officer)",
)
async def create_disclosure(
    body: DisclosureRequestCreate,
    staff: DisclosureRequester,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    response: Response,
) -> DisclosurePublic:
    found = DisclosurePublic.model_validate(
        await workflow.request(tx, ctx, staff=staff, ip=ip, data=body)
    )
    created(response, f"{router.prefix}/disclosures/{found.id}")
    return found


@router.get(
    "/disclosures",
    dependencies=[ONE_VALUE_EACH],
    responses={**STAFF_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Disclosure requests, newest first (operator, privacy officer, auditor)",
)
async def list_disclosures(
    staff: DisclosureReader,
    tx: TxDep,
    ctx: CtxDep,
    status: Annotated[RequestStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DisclosureList:
    found = await workflow.list_requests(tx, ctx, status=status, limit=limit)
    return DisclosureList(requests=[DisclosurePublic.model_validate(row) for row in found])


@router.get(
    "/disclosures/{request_id}",
    responses={**STAFF_PROBLEMS, 404: RequestNotFound.openapi(), 422: InvalidInput.openapi()},
    summary="One disclosure request (operator, privacy officer, auditor)",
)
async def read_disclosure(
    request_id: RequestId, staff: DisclosureReader, tx: TxDep, ctx: CtxDep
) -> DisclosurePublic:
    return DisclosurePublic.model_validate(await workflow.get(tx, ctx, request_id=request_id))


@router.post(
    "/disclosures/{request_id}/approve",
    responses=problems(*_DECIDING, *_SUBJECT_CHECKS),
    summary="Approve a request after weighing its necessity (a privacy officer, not the requester)",
)
async def approve_disclosure(
    request_id: RequestId,
    body: Decision,
    staff: DisclosureDecider,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
) -> DisclosurePublic:
    found = await workflow.decide(
        tx, ctx, staff=staff, ip=ip, request_id=request_id, note=body.note, approve=True
    )
    return DisclosurePublic.model_validate(found)


@router.post(
    "/disclosures/{request_id}/reject",
    responses=problems(*_DECIDING),
    summary="Reject a request (a privacy officer, not the requester)",
)
async def reject_disclosure(
    request_id: RequestId,
    body: Decision,
    staff: DisclosureDecider,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
) -> DisclosurePublic:
    found = await workflow.decide(
        tx, ctx, staff=staff, ip=ip, request_id=request_id, note=body.note, approve=False
    )
    return DisclosurePublic.model_validate(found)


@router.post(
    "/disclosures/{request_id}/release",
    responses=_RELEASE_PROBLEMS,
    summary="Build the package and append its ledger entry, once (privacy officer)",
)
async def release_disclosure(
    request_id: RequestId,
    staff: DisclosureDecider,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    response: Response,
) -> ReleasePublic:
    done = await workflow.release(tx, ctx, staff=staff, request_id=request_id, ip=ip)
    response.headers.update(NO_STORE)
    return done.public()


# What an operation that signs a checkpoint answers with 503: either cause.
_NOT_SIGNED = problems(DatabaseUnavailable, WitnessUnavailable)[503]


@router.get(
    "/ledger/export",
    dependencies=[ONE_VALUE_EACH],
    responses={
        **STAFF_PROBLEMS,
        422: InvalidInput.openapi(),
        503: _NOT_SIGNED,
        200: {
            "content": {"application/x-ndjson": {}, "text/csv": {}},
            "headers": header_entries(
                {
                    auditor.HELD_BACK: "only when the head cannot be signed (an entry no "
                    "release wrote, entries cut, an entry long uncovered): that entry's seq; "
                    "the export ends at the newest signed head, leaving what is after it out"
                },
                required=False,
            ),
        },
    },
    response_class=StreamingResponse,
    summary="Export the ledger as JSON Lines or CSV, streamed, verifiable offline (auditor, "
    "privacy officer, admin: it holds no number); the head is signed first if it is new",
)
async def export_ledger(
    query: Annotated[ExportQuery, Query()],
    staff: LedgerExporter,
    tx: TxDep,
    ctx: CtxDep,
    db: DbDep,
) -> StreamingResponse:
    made = await auditor.export_ledger(tx, ctx, db=db, actor=staff.actor, query=query)
    media_type, disposition = auditor.export_file(ctx, query)
    headers = {**NO_STORE, "Content-Disposition": disposition, **made.headers}
    return StreamingResponse(made.chunks, media_type=media_type, headers=headers)


@router.get(
    "/ledger/verify",
    responses=STAFF_PROBLEMS,
    summary="Walk the chain and check every checkpoint signature (auditor, privacy officer)",
)
async def verify_ledger(staff: LedgerAuditor, tx: TxDep, ctx: CtxDep) -> VerifyReportPublic:
    report = await auditor.verify_ledger(tx, ctx, actor=staff.actor)
    return VerifyReportPublic.model_validate(report.as_dict())


@router.post(
    "/ledger/checkpoints",
    status_code=201,
    responses={
        **STAFF_PROBLEMS,
        **problems(EmptyLedger, UnbackedEntry, LedgerCut, LedgerUncovered, LedgerRewritten),
        503: _NOT_SIGNED,
    },
    summary="Sign a checkpoint committing to the ledger's head now (auditor, privacy officer)",
)
async def create_checkpoint(staff: LedgerAuditor, tx: TxDep, ctx: CtxDep) -> CheckpointPublic:
    made = await checkpoints.create_now(tx, ctx, actor=staff.actor)
    return CheckpointPublic.model_validate(made)


@keys_router.get(
    "/public-keys",
    summary="Public keys that verify the ledger's signed checkpoints (no credentials needed)",
    openapi_extra=NO_DATABASE,  # from the settings' signing ring
)
async def public_keys(ctx: CtxDep, response: Response) -> PublicKeysPublic:
    ring = signing.ring(ctx.settings)
    response.headers["Cache-Control"] = "public, max-age=300"
    return PublicKeysPublic(
        keys=[
            PublicKeyPublic(
                key_id=key_id,
                algorithm=signing.ALGORITHM,
                public_key=public,
                active=key_id == ring.active_id,
            )
            for key_id, public in sorted(ring.public_raw().items())
        ]
    )
