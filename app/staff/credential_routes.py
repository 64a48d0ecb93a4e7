"""/v1/staff/me/totp, /v1/staff/{id}/totp and /offboard, and /v1/api-keys (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from app.core.db import Row
from app.core.deps import runtime_of
from app.core.errors import AUTH_PROBLEMS, InvalidInput, NotFound
from app.core.http import NO_STORE
from app.staff import accounts, api_key_admin, api_keys, offboarding, totp
from app.staff.api_keys import RotatedApiKey
from app.staff.auth import AnyStaff, OwnCredentials, StaffAdmin, as_staff
from app.staff.credential_schemas import (
    ApiKeyCreate,
    ApiKeyListPublic,
    ApiKeyPublic,
    ApiKeyRotate,
    NewApiKeyPublic,
    OffboardPublic,
    OffboardRequest,
    RecoveryCodesPublic,
    RotatedApiKeyPublic,
    TotpCode,
    TotpEnrolmentPublic,
    TotpResetPublic,
    TotpStatusPublic,
)
from app.staff.schemas import StaffPublic

router = APIRouter(prefix="/v1/staff", tags=["staff"])
api_keys_router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])
StaffId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^stf_[A-Za-z0-9_\-]+$")]
KeyId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^key_[A-Za-z0-9_\-]+$")]


def _key(request: Request, row: Row) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(
        {**row, "state": api_key_admin.state(runtime_of(request).ctx, row)}
    )


def _rotated(request: Request, rotated: RotatedApiKey) -> RotatedApiKeyPublic:
    return RotatedApiKeyPublic(
        old=_key(request, rotated.old),
        new=_key(request, rotated.new.key),
        token=rotated.new.token,
    )


# -- one's own second factor -------------------------------------------------------------


@router.get("/me/totp", responses=AUTH_PROBLEMS, summary="One's own second factor")
async def totp_status(caller: OwnCredentials, request: Request) -> TotpStatusPublic:
    rt = runtime_of(request)
    row = await rt.db.run(as_staff, rt.ctx, caller=caller, action=totp.status)
    return TotpStatusPublic.model_validate(dict(row))


@router.post(
    "/me/totp",
    status_code=201,
    responses={**AUTH_PROBLEMS, 409: totp.TotpAlreadyEnrolled.openapi()},
    summary="Start a TOTP enrolment: a secret and its URI, shown once",
)
async def start_totp(
    caller: OwnCredentials, request: Request, response: Response
) -> TotpEnrolmentPublic:
    rt = runtime_of(request)
    new = await rt.db.run(as_staff, rt.ctx, caller=caller, action=totp.start_enrolment)
    response.headers.update(NO_STORE)
    return TotpEnrolmentPublic(secret=new.secret, provisioning_uri=new.provisioning_uri)


@router.post(
    "/me/totp/confirm",
    responses={**AUTH_PROBLEMS, 409: totp.TotpNotEnrolled.openapi(), 422: InvalidInput.openapi()},
    summary="Confirm the enrolment with a first code: ten recovery codes, shown once",
)
async def confirm_totp(
    body: TotpCode, caller: OwnCredentials, request: Request, response: Response
) -> RecoveryCodesPublic:
    rt = runtime_of(request)
    codes = await rt.db.run(
        as_staff, rt.ctx, caller=caller, action=totp.confirm_enrolment, code=body.code
    )
    response.headers.update(NO_STORE)
    return RecoveryCodesPublic(recovery_codes=codes)


@router.post(
    "/me/totp/recovery-codes",
    responses={
        **AUTH_PROBLEMS,
        409: totp.TotpNotEnrolled.openapi(),
        422: totp.WrongCode.openapi(),
        429: totp.SecondFactorLocked.openapi(),
    },
    summary="Replace one's recovery codes (proving a current TOTP code)",
)
async def new_recovery_codes(
    body: TotpCode, caller: AnyStaff, request: Request, response: Response
) -> RecoveryCodesPublic:
    rt = runtime_of(request)
    codes = await rt.db.run(
        as_staff, rt.ctx, caller=caller, action=totp.new_recovery_codes, code=body.code
    )
    response.headers.update(NO_STORE)
    return RecoveryCodesPublic(recovery_codes=codes)


# -- admins: someone else's second factor, offboarding --------------------------------------


@router.delete(
    "/{staff_id}/totp",
    responses={**AUTH_PROBLEMS, 404: accounts.StaffNotFound.openapi()},
    summary="Reset an account's TOTP (admin; not one's own); its sessions end",
)
async def reset_totp(staff_id: StaffId, caller: StaffAdmin, request: Request) -> TotpResetPublic:
    rt = runtime_of(request)
    row = await rt.db.run(as_staff, rt.ctx, caller=caller, action=totp.reset, account_id=staff_id)
    return TotpResetPublic.model_validate(dict(row))


@router.post(
    "/{staff_id}/offboard",
    responses={
        **AUTH_PROBLEMS,
        404: accounts.StaffNotFound.openapi(),
        409: accounts.LastAdmin.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Offboard (admin; not oneself): disable, end sessions, rotate their API keys",
)
async def offboard(
    staff_id: StaffId,
    caller: StaffAdmin,
    request: Request,
    response: Response,
    body: OffboardRequest | None = None,
) -> OffboardPublic:
    rt = runtime_of(request)
    done = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=offboarding.offboard,
        account_id=staff_id,
        grace_hours=body.grace_hours if body is not None else None,
    )
    response.headers.update(NO_STORE)
    return OffboardPublic(
        staff=StaffPublic.model_validate(dict(done.account)),
        disabled_now=done.disabled_now,
        sessions_ended=done.sessions_ended,
        totp_removed=done.totp_removed,
        recovery_codes_removed=done.recovery_codes_removed,
        rotated_keys=[_rotated(request, rotated) for rotated in done.rotated],
        ending_keys=[_key(request, key) for key in done.ending],
    )


# -- admins: service API keys ----------------------------------------------------------------


@api_keys_router.post(
    "",
    status_code=201,
    responses={**AUTH_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Create an API key (admin): shown once",
)
async def create_key(
    body: ApiKeyCreate, caller: StaffAdmin, request: Request, response: Response
) -> NewApiKeyPublic:
    rt = runtime_of(request)
    new = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=api_key_admin.create,
        name=body.name,
        scopes=[scope.value for scope in body.scopes],
        expires_days=body.expires_days,
    )
    response.headers.update(NO_STORE)
    return NewApiKeyPublic(key=_key(request, new.key), token=new.token)


@api_keys_router.get("", responses=AUTH_PROBLEMS, summary="Every API key, newest first (admin)")
async def list_keys(caller: StaffAdmin, request: Request) -> ApiKeyListPublic:
    rt = runtime_of(request)
    rows = await rt.db.run(as_staff, rt.ctx, caller=caller, action=api_key_admin.list_all)
    return ApiKeyListPublic(api_keys=[_key(request, row) for row in rows])


@api_keys_router.post(
    "/{key_id}/revoke",
    responses={**AUTH_PROBLEMS, 404: NotFound.openapi(), 409: api_keys.ApiKeyRevoked.openapi()},
    summary="Revoke an API key at once (admin)",
)
async def revoke_key(key_id: KeyId, caller: StaffAdmin, request: Request) -> ApiKeyPublic:
    rt = runtime_of(request)
    row = await rt.db.run(
        as_staff, rt.ctx, caller=caller, action=api_key_admin.revoke, key_id=key_id
    )
    return _key(request, row)


@api_keys_router.post(
    "/{key_id}/rotate",
    responses={
        **AUTH_PROBLEMS,
        404: NotFound.openapi(),
        409: api_keys.ApiKeyRevoked.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Rotate an API key (admin): successor shown once; the old dies after the grace",
)
async def rotate_key(
    key_id: KeyId,
    caller: StaffAdmin,
    request: Request,
    response: Response,
    body: ApiKeyRotate | None = None,
) -> RotatedApiKeyPublic:
    rt = runtime_of(request)
    rotated = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=api_key_admin.rotate,
        key_id=key_id,
        grace_hours=body.grace_hours if body is not None else None,
    )
    response.headers.update(NO_STORE)
    return _rotated(request, rotated)
