"""/v1/subject: the data subject's own routes, with a subject token (docs/api.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Response

from app.core.deps import ClientIp, CtxDep, DbDep, OutboxDep, TxDep
from app.core.errors import AppError, Unauthenticated
from app.core.http import NO_STORE, JsonRoute
from app.core.openapi import problems
from app.ledger.errors import SubjectNotFound
from app.subject import erasure, service, sessions
from app.subject.auth import CurrentSubject, SubjectApart
from app.subject.schemas import (
    ActionDonePublic,
    CorrectedPublic,
    ErasureConfirm,
    ErasureReceiptPublic,
    ProvisionChoice,
    RequestKind,
    SubjectCodeCheck,
    SubjectDataPublic,
    SubjectDisclosuresPublic,
    SubjectSessionPublic,
    SubjectStart,
    SubjectVerificationPublic,
)
from app.verification import states

router = APIRouter(prefix="/v1/subject", tags=["data subjects"], route_class=JsonRoute)
_AUTH: dict[int | str, dict[str, Any]] = {401: Unauthenticated.openapi()}
# What checking a self-service code answers (app.subject.sessions.check_code), as the
# problems of each route that checks one, with that route's own.
_CHECK: tuple[type[AppError], ...] = (
    states.VerificationNotFound,
    *states.NOT_PENDING,
    states.WrongCode,
)


@router.post(
    "/verifications",
    status_code=201,
    responses=problems(*states.SEND_REFUSALS),
    summary="Send a code to one's own number, to see or act on what is held about it",
)
async def start_subject_verification(
    body: SubjectStart, tx: TxDep, ctx: CtxDep, ip: ClientIp, outbox: OutboxDep, response: Response
) -> SubjectVerificationPublic:
    response.headers.update(NO_STORE)
    public = await sessions.start(tx, ctx, data=body, ip=ip)
    tx.after_commit(outbox.kick)
    return public


@router.post(
    "/sessions",
    status_code=201,
    responses=problems(*_CHECK, sessions.NothingHeld),
    summary="Check the code and open a subject session (a short-lived token)",
)
async def open_subject_session(
    body: SubjectCodeCheck, db: DbDep, ctx: CtxDep, response: Response
) -> SubjectSessionPublic:
    response.headers.update(NO_STORE)
    return await sessions.open_session(db, ctx, data=body)


@router.delete(
    "/session",
    status_code=204,
    response_class=Response,
    responses=_AUTH,
    summary="End the subject session now",
)
async def end_subject_session(subject: CurrentSubject, tx: TxDep, ctx: CtxDep) -> Response:
    await sessions.end(tx, ctx, subject=subject)
    return Response(status_code=204)  # no body, and no content type claiming one


@router.get("/data", responses=_AUTH, summary="Everything held about one's number")
async def read_subject_data(
    subject: CurrentSubject, tx: TxDep, ctx: CtxDep, response: Response
) -> SubjectDataPublic:
    response.headers.update(NO_STORE)
    return await service.held(tx, ctx, subject=subject)


@router.get(
    "/disclosures",
    responses=_AUTH,
    summary="The records of disclosures of one's data to third parties (APPI Art. 33(5))",
)
async def read_subject_disclosures(
    subject: CurrentSubject, tx: TxDep, ctx: CtxDep, response: Response
) -> SubjectDisclosuresPublic:
    response.headers.update(NO_STORE)
    return await service.disclosures(tx, ctx, subject=subject)


@router.post(
    "/delivery-consent/withdraw",
    responses=_AUTH,
    summary="Withdraw consent to coupon deliveries",
)
async def withdraw_subject_delivery(
    subject: CurrentSubject, tx: TxDep, ctx: CtxDep, ip: ClientIp
) -> ActionDonePublic:
    return await service.act(tx, ctx, subject=subject, kind=RequestKind.WITHDRAW_DELIVERY, ip=ip)


@router.post(
    "/coupon-usage/stop",
    responses=_AUTH,
    summary="Stop the use of one's number for coupon_usage",
)
async def stop_subject_usage(
    subject: CurrentSubject, tx: TxDep, ctx: CtxDep, ip: ClientIp
) -> ActionDonePublic:
    return await service.act(tx, ctx, subject=subject, kind=RequestKind.STOP_USAGE, ip=ip)


@router.post(
    "/third-party-provision",
    responses=_AUTH,
    summary="Stop or resume the provision of one's data to third parties (APPI Art. 35)",
)
async def change_subject_provision(
    body: ProvisionChoice, subject: CurrentSubject, tx: TxDep, ctx: CtxDep, ip: ClientIp
) -> ActionDonePublic:
    kind = RequestKind.STOP_PROVISION if body.action == "stop" else RequestKind.RESUME_PROVISION
    return await service.act(tx, ctx, subject=subject, kind=kind, ip=ip)


@router.post(
    "/erasure",
    responses=_AUTH,
    summary="Erase one's number and everything linked to it; answers the receipt",
)
async def erase_subject(
    body: ErasureConfirm,
    subject: CurrentSubject,
    tx: TxDep,
    ctx: CtxDep,
    db: DbDep,
    background: BackgroundTasks,
    response: Response,
) -> ErasureReceiptPublic:
    response.headers.update(NO_STORE)
    receipt = await erasure.erase_own(tx, ctx, subject=subject)
    # Once committed (before the answer is sent): empty SQLite's write-ahead log.
    background.add_task(db.checkpoint)
    return receipt


@router.post(
    "/correction/verifications",
    status_code=201,
    responses={**_AUTH, **problems(*states.SEND_REFUSALS, sessions.SameNumber)},
    summary="Send a code to the new number one's records should move to",
)
async def start_subject_correction(
    body: SubjectStart,
    subject: CurrentSubject,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    outbox: OutboxDep,
) -> SubjectVerificationPublic:
    public = await sessions.start_correction(tx, ctx, subject=subject, data=body, ip=ip)
    tx.after_commit(outbox.kick)
    return public


@router.post(
    "/correction",
    responses={
        **_AUTH,
        **problems(*_CHECK, SubjectNotFound, erasure.NumberTaken, sessions.SameNumber),
    },
    summary="Check the new number's code and move one's records to it",
)
async def correct_subject(
    body: SubjectCodeCheck, subject: SubjectApart, db: DbDep, ctx: CtxDep
) -> CorrectedPublic:
    return await erasure.correct(db, ctx, subject=subject, data=body)
