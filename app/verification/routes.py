"""/v1/verifications: thin routes that authorise, call one service function and answer."""

from __future__ import annotations

from typing import Annotated, get_args

from fastapi import APIRouter, Header, Path, Request, Response

from app.clients.auth import VerificationsWrite
from app.core.deps import ClientIp, CtxDep, OutboxDep, TxDep
from app.core.errors import AUTH_PROBLEMS
from app.core.http import (
    REPLAYED,
    JsonRoute,
    created,
    created_answer,
    one_header,
    replayed_answer,
)
from app.core.metrics import VERIFICATIONS_APPROVED, VERIFICATIONS_STARTED
from app.core.openapi import problems
from app.verification import checking, idempotency, service, states
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
        # The contract in the document too: an empty header is refused (422), never read
        # as no key, and a generated client can check a key before sending it.
        min_length=1,
        max_length=idempotency.MAX_KEY,
        pattern=r"^[\x20-\x7e]+$",
        description="1 to 255 printable ASCII characters: a repeat with the same key and "
        "body replays the first answer (200, Idempotent-Replayed: true) for 24 hours "
        "(SMSREG_IDEMPOTENCY_TTL_HOURS); the same key with another body is refused (422)",
    ),
]

_LOCATION = "the verification's path, `/v1/verifications/{id}`, which reads its state"


@router.post(
    "",
    status_code=201,
    response_model=VerificationPublic,
    responses={
        **AUTH_PROBLEMS,
        201: created_answer(_LOCATION),
        200: replayed_answer(
            VerificationPublic, "replayed answer (Idempotency-Key)", location=_LOCATION
        ),
        **problems(states.IdempotencyKeyReused, *states.SEND_REFUSALS),
    },
    summary="Start a verification: send a one-time code by SMS",
)
async def start_verification(
    request: Request,
    body: VerificationStart,
    client: VerificationsWrite,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    outbox: OutboxDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> VerificationPublic:
    one_header(request, "Idempotency-Key")  # once the caller is known: 401 comes first
    result = await service.start(
        tx, ctx, client=client, data=body, ip=ip, idempotency_key=idempotency_key
    )
    created(response, f"{router.prefix}/{result.public.id}")
    if result.replayed:
        response.status_code = 200
        response.headers.update(REPLAYED)
    else:
        tx.after_commit(outbox.kick)  # harmless when a separate `smsreg worker` sends
        _STARTED[body.purpose].inc()
    return result.public


@router.post(
    "/{verification_id}/resend",
    status_code=202,
    responses={
        **AUTH_PROBLEMS,
        **problems(states.VerificationNotFound, *states.NOT_PENDING, *states.SEND_REFUSALS),
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
        **problems(states.VerificationNotFound, *states.NOT_PENDING, states.WrongCode),
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
    responses={**AUTH_PROBLEMS, **problems(states.VerificationNotFound)},
    summary="A verification's status and delivery state",
)
async def read_verification(
    verification_id: VerificationId, client: VerificationsWrite, tx: TxDep, ctx: CtxDep
) -> VerificationPublic:
    return await service.read(tx, ctx, client=client, verification_id=verification_id)
