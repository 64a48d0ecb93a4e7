"""/v1/staff/me/totp: one's own second factor; /v1/staff/{id}/totp and /offboard: admins'.

These are the staff routes of app.credentials: they need the staff session dependencies,
which app.credentials may not import, so they live here and call app.staff.second_factor
(the staff's side of TOTP and recovery codes) and app.staff.offboarding.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.core.deps import CtxDep, TxDep
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.core.http import NO_STORE, JsonRoute
from app.core.openapi import problems
from app.credentials import totp
from app.staff import accounts, lockout, offboarding, second_factor
from app.staff.auth import STAFF_PROBLEMS, STAFF_REFUSALS, AnyStaff, OwnCredentials, StaffAdmin
from app.staff.credential_schemas import (
    OffboardPublic,
    OffboardRequest,
    RecoveryCodesPublic,
    TotpCode,
    TotpEnrolmentPublic,
    TotpResetPublic,
    TotpStatusPublic,
    offboard_public,
)
from app.staff.paths import STAFF_ID, StaffId

router = APIRouter(prefix="/v1/staff", tags=["staff"], route_class=JsonRoute)


# -- one's own second factor -------------------------------------------------------------


@router.get("/me/totp", responses=AUTH_PROBLEMS, summary="One's own second factor")
async def totp_status(staff: OwnCredentials, tx: TxDep, ctx: CtxDep) -> TotpStatusPublic:
    return TotpStatusPublic.model_validate(await second_factor.status(tx, ctx, staff=staff))


@router.post(
    "/me/totp",
    status_code=201,
    responses={**AUTH_PROBLEMS, 409: totp.TotpAlreadyEnrolled.openapi()},
    summary="Start a TOTP enrolment: a secret and its URI, shown once",
)
async def start_totp(
    staff: OwnCredentials, tx: TxDep, ctx: CtxDep, response: Response
) -> TotpEnrolmentPublic:
    new = await second_factor.start_enrolment(tx, ctx, staff=staff)
    response.headers.update(NO_STORE)
    return TotpEnrolmentPublic(secret=new.secret, provisioning_uri=new.provisioning_uri)


@router.post(
    "/me/totp/confirm",
    responses={**AUTH_PROBLEMS, 409: totp.TotpNotEnrolled.openapi(), 422: InvalidInput.openapi()},
    summary="Confirm the enrolment with a first code: ten recovery codes, shown once",
)
async def confirm_totp(
    body: TotpCode, staff: OwnCredentials, tx: TxDep, ctx: CtxDep, response: Response
) -> RecoveryCodesPublic:
    codes = await second_factor.confirm_enrolment(tx, ctx, staff=staff, code=body.code)
    response.headers.update(NO_STORE)
    return RecoveryCodesPublic(recovery_codes=codes)


@router.post(
    "/me/totp/recovery-codes",
    responses={
        **STAFF_PROBLEMS,
        409: totp.TotpNotEnrolled.openapi(),
        422: second_factor.WrongCode.openapi(),
        429: lockout.AccountLocked.openapi(),
    },
    summary="Replace one's recovery codes (proving a current TOTP code)",
)
async def new_recovery_codes(
    body: TotpCode, staff: AnyStaff, tx: TxDep, ctx: CtxDep, response: Response
) -> RecoveryCodesPublic:
    codes = await second_factor.new_recovery_codes(tx, ctx, staff=staff, code=body.code)
    response.headers.update(NO_STORE)
    return RecoveryCodesPublic(recovery_codes=codes)


# -- admins: someone else's second factor, offboarding --------------------------------------


@router.delete(
    f"/{STAFF_ID}/totp",
    responses=problems(*STAFF_REFUSALS, accounts.OwnAccount, accounts.StaffNotFound),
    summary="Reset an account's TOTP (admin; not one's own); its sessions end",
)
async def reset_totp(
    staff_id: StaffId, staff: StaffAdmin, tx: TxDep, ctx: CtxDep
) -> TotpResetPublic:
    done = await second_factor.reset(tx, ctx, staff=staff, account_id=staff_id)
    return TotpResetPublic.model_validate(done)


@router.post(
    f"/{STAFF_ID}/offboard",
    responses={
        **problems(
            *STAFF_REFUSALS, accounts.OwnAccount, accounts.StaffNotFound, accounts.LastAdmin
        ),
    },
    summary="Offboard (admin; not oneself): disable, end sessions, rotate their API keys",
)
async def offboard(
    staff_id: StaffId,
    staff: StaffAdmin,
    tx: TxDep,
    ctx: CtxDep,
    response: Response,
    body: OffboardRequest | None = None,
) -> OffboardPublic:
    done = await offboarding.offboard(
        tx,
        ctx,
        staff=staff,
        account_id=staff_id,
        grace_hours=body.grace_hours if body is not None else None,
    )
    response.headers.update(NO_STORE)
    return offboard_public(done, ctx.clock.now())
