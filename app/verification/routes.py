"""/v1/verifications: thin routes that authorise, call one service function and answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse

from app.core.deps import RuntimeDep, request_ip
from app.core.errors import Forbidden, InvalidInput, RateLimited, Unauthenticated
from app.staff.auth import VerificationsWrite
from app.verification import service
from app.verification.schemas import (
    CheckResultPublic,
    VerificationCheck,
    VerificationPublic,
    VerificationStart,
)

router = APIRouter(prefix="/v1/verifications", tags=["verifications"])
VerificationId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^ver_[A-Za-z0-9_\-]+$")]
_AUTH: dict[int | str, dict[str, Any]] = {401: Unauthenticated.openapi(), 403: Forbidden.openapi()}


@router.post(
    "",
    status_code=201,
    response_model=VerificationPublic,
    responses={
        **_AUTH,
        422: InvalidInput.openapi(),
        429: RateLimited.openapi(),
        200: {"model": VerificationPublic, "description": "replayed answer (Idempotency-Key)"},
    },
    summary="Start a verification: send a one-time code by SMS",
)
async def start_verification(
    body: VerificationStart,
    client: VerificationsWrite,
    rt: RuntimeDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    result = await rt.db.run(
        service.start,
        rt.ctx,
        client=client,
        data=body,
        ip=request_ip(request),
        idempotency_key=idempotency_key,
    )
    if result.replayed:
        return JSONResponse(result.body, status_code=200, headers={"Idempotent-Replayed": "true"})
    rt.outbox.kick()  # harmless when a separate `smsreg worker` sends instead
    return JSONResponse(result.body, status_code=201)


@router.post(
    "/{verification_id}/resend",
    status_code=202,
    responses={
        **_AUTH,
        404: service.VerificationNotFound.openapi(),
        409: service.AlreadyApproved.openapi(),
        410: service.VerificationExpired.openapi(),
        429: RateLimited.openapi(),
    },
    summary="Send the same code again (after the cooldown)",
)
async def resend_verification(
    verification_id: VerificationId,
    client: VerificationsWrite,
    rt: RuntimeDep,
    request: Request,
) -> VerificationPublic:
    public = await rt.db.run(
        service.resend,
        rt.ctx,
        client=client,
        verification_id=verification_id,
        ip=request_ip(request),
    )
    rt.outbox.kick()  # harmless when a separate `smsreg worker` sends instead
    return public


@router.post(
    "/{verification_id}/check",
    responses={
        **_AUTH,
        404: service.VerificationNotFound.openapi(),
        409: service.AlreadyApproved.openapi(),
        410: service.VerificationExpired.openapi(),
        422: service.WrongCode.openapi(),
        429: service.AttemptsExhausted.openapi(),
    },
    summary="Check the code the person typed",
)
async def check_verification(
    verification_id: VerificationId,
    body: VerificationCheck,
    client: VerificationsWrite,
    rt: RuntimeDep,
) -> CheckResultPublic:
    return await rt.db.run(
        service.check, rt.ctx, client=client, verification_id=verification_id, data=body
    )


@router.get(
    "/{verification_id}",
    responses={**_AUTH, 404: service.VerificationNotFound.openapi()},
    summary="A verification's status and delivery state",
)
async def read_verification(
    verification_id: VerificationId, client: VerificationsWrite, rt: RuntimeDep
) -> VerificationPublic:
    return await rt.db.run(service.read, rt.ctx, client=client, verification_id=verification_id)
