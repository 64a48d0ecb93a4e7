"""/v1/verifications: thin routes that authorise, call one service function and answer."""

from __future__ import annotations

from typing import Annotated, get_args

from fastapi import APIRouter, Header, Path, Response

from app.clients.auth import VerificationsWrite
from app.core.deps import ClientIp, CtxDep, OutboxDep, TxDep
from app.core.errors import AUTH_PROBLEMS, InvalidInput, RateLimited
from app.core.http import JsonRoute
from app.core.metrics import VERIFICATIONS_APPROVED, VERIFICATIONS_STARTED
from app.verification import checking, service, states
from app.verification.schemas import (
    CheckResultPublic,
    Purpose,
    VerificationCheck,
    VerificationPublic,
    VerificationStart,
)

# Each purpose's counters, looked up once: the series exist (at 0) from the first scrape.
_STARTED = {purpose: VERIFICATIONS_STARTED.labels(purpose) for purpose in get_args(Purpose)}
_APPROVED = {purpose: VERIFICATIONS_APPROVED.labels(purpose) for purpose in get_args(Purpose)}

router = APIRouter(prefix="/v1/verifications", tags=["verifications"], route_class=JsonRoute)
VerificationId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^ver_[A-Za-z0-9_\-]+$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1 to 255 printable ASCII characters: a repeat with the same key and "
        "body replays the first answer (200, Idempotent-Replayed: true) for 24 hours "
        "(SMSREG_IDEMPOTENCY_TTL_HOURS); the same key with another body is refused (422)",
    ),
]


@router.post(
    "",
    status_code=201,
    response_model=VerificationPublic,
    responses={
        **AUTH_PROBLEMS,
        200: {"model": VerificationPublic, "description": "replayed answer (Idempotency-Key)"},
        422: InvalidInput.openapi(),
        429: RateLimited.openapi() | {"description": "a send limit, or a paused number range"},
    },
    summary="Start a verification: send a one-time code by SMS",
)
async def start_verification(
    body: VerificationStart,
    client: VerificationsWrite,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    outbox: OutboxDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> VerificationPublic:
    result = await service.start(
        tx, ctx, client=client, data=body, ip=ip, idempotency_key=idempotency_key
    )
    if result.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    else:
        tx.after_commit(outbox.kick)  # harmless when a separate `smsreg worker` sends
        _STARTED[body.purpose].inc()
    return result.public


@router.post(
    "/{verification_id}/resend",
    status_code=202,
    responses={
        **AUTH_PROBLEMS,
        404: states.VerificationNotFound.openapi(),
        409: states.AlreadyApproved.openapi(),
        410: states.VerificationExpired.openapi(),
        429: RateLimited.openapi(),
    },
    summary="Send the same code again (after the cooldown)",
)
async def resend_verification(
    verification_id: VerificationId,
    client: VerificationsWrite,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    outbox: OutboxDep,
) -> VerificationPublic:
    public = await service.resend(tx, ctx, client=client, verification_id=verification_id, ip=ip)
    tx.after_commit(outbox.kick)
    return public


@router.post(
    "/{verification_id}/check",
    responses={
        **AUTH_PROBLEMS,
        404: states.VerificationNotFound.openapi(),
        409: states.AlreadyApproved.openapi(),
        410: states.VerificationExpired.openapi(),
        422: states.WrongCode.openapi(),
        429: states.AttemptsExhausted.openapi(),
    },
    summary="Check the code the person typed",
)
async def check_verification(
    verification_id: VerificationId,
    body: VerificationCheck,
    client: VerificationsWrite,
    tx: TxDep,
    ctx: CtxDep,
) -> CheckResultPublic:
    result = await checking.check(
        tx, ctx, client=client, verification_id=verification_id, data=body
    )
    _APPROVED[result.purpose].inc()
    return result


@router.get(
    "/{verification_id}",
    responses={**AUTH_PROBLEMS, 404: states.VerificationNotFound.openapi()},
    summary="A verification's status and delivery state",
)
async def read_verification(
    verification_id: VerificationId, client: VerificationsWrite, tx: TxDep, ctx: CtxDep
) -> VerificationPublic:
    return await service.read(tx, ctx, client=client, verification_id=verification_id)
