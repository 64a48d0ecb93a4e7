"""/v1/staff: log in and out, one's own account, and the admins' management of staff.

Logging in, changing one's password and creating an account hash a password (argon2,
~100 ms in a worker thread): those routes hold no transaction while it runs, but one
short transaction before and one after (``db.transaction()``).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.core.errors import AUTH_PROBLEMS
from app.core.http import NO_STORE, JsonRoute
from app.core.openapi import problems
from app.credentials.totp import TotpRequired
from app.staff import accounts, invitations, lockout, own_password, sessions, throttle
from app.staff import login as login_flows
from app.staff.auth import (
    STAFF_PROBLEMS,
    STAFF_REFUSALS,
    OwnCredentials,
    OwnPassword,
    StaffAdmin,
    StaffRead,
)
from app.staff.paths import STAFF_ID, StaffId
from app.staff.schemas import (
    LoginRequest,
    MePublic,
    NewSessionPublic,
    PasswordChange,
    RoleChange,
    SessionsRevokedPublic,
    StaffDetailPublic,
    StaffListPublic,
    StaffPublic,
    detail_public,
    me_public,
    new_session_public,
    staff_public,
)

router = APIRouter(prefix="/v1/staff", tags=["staff"], route_class=JsonRoute)


@router.post(
    "/sessions",
    status_code=201,
    responses={
        **problems(sessions.InvalidCredentials, TotpRequired, throttle.LoginThrottled),
    },
    # An empty requirement: anyone may try to log in.
    openapi_extra={"security": [{}]},
    summary="Log in: a session token, shown once (answers 401 alike for every failure)",
)
async def login(
    body: LoginRequest, db: DbDep, ctx: CtxDep, ip: ClientIp, response: Response
) -> NewSessionPublic:
    new = await login_flows.log_in(
        db,
        ctx,
        username=body.username,
        password=body.password,
        ip=ip,
        totp_code=body.totp,
        recovery_code=body.recovery_code,
    )
    response.headers.update(NO_STORE)
    return new_session_public(new)


@router.delete(
    "/sessions/current",
    status_code=204,
    responses=AUTH_PROBLEMS,
    summary="Log out: the session ends at once",
)
async def logout(staff: OwnCredentials, tx: TxDep, ctx: CtxDep) -> Response:
    await sessions.logout(tx, ctx, staff=staff)
    return Response(status_code=204)


@router.get("/me", responses=AUTH_PROBLEMS, summary="The signed-in account and its session")
async def me(staff: OwnCredentials, tx: TxDep, ctx: CtxDep) -> MePublic:
    return me_public(await sessions.me(tx, ctx, staff=staff))


@router.put(
    "/me/password",
    responses={
        **AUTH_PROBLEMS,
        422: own_password.WrongPassword.openapi(),
        429: lockout.AccountLocked.openapi(),
    },
    summary="Change one's own password (ends one's other sessions)",
)
async def change_password(
    body: PasswordChange, staff: OwnPassword, db: DbDep, ctx: CtxDep
) -> StaffPublic:
    account = await login_flows.change_password(
        db,
        ctx,
        staff=staff,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return staff_public(account)


@router.get("", responses=STAFF_PROBLEMS, summary="Every staff account (admin, auditor)")
async def list_staff(staff: StaffRead, tx: TxDep, ctx: CtxDep) -> StaffListPublic:
    return StaffListPublic(
        staff=[staff_public(account) for account in await accounts.list_accounts(tx, ctx)]
    )


@router.get(
    f"/{STAFF_ID}",
    responses={**STAFF_PROBLEMS, 404: accounts.StaffNotFound.openapi()},
    summary="One staff account with its permission history (admin, auditor)",
)
async def read_staff(
    staff_id: StaffId, staff: StaffRead, tx: TxDep, ctx: CtxDep
) -> StaffDetailPublic:
    found = await accounts.detail(tx, ctx, account_id=staff_id)
    return detail_public(found.account, found.history)


@router.put(
    f"/{STAFF_ID}/role",
    responses={
        **problems(
            *STAFF_REFUSALS,
            accounts.OwnAccount,
            accounts.StaffNotFound,
            accounts.NeedsSecondAdmin,
            accounts.AccountDisabled,
            accounts.LastAdmin,
        ),
    },
    summary="Change an account's role to operator or auditor (admin; not one's own); "
    "privacy_officer and admin are proposals (POST /v1/staff/{staff_id}/grants)",
)
async def change_role(
    staff_id: StaffId, body: RoleChange, staff: StaffAdmin, tx: TxDep, ctx: CtxDep
) -> StaffPublic:
    account = await invitations.change_role(
        tx, ctx, staff=staff, account_id=staff_id, role=body.role
    )
    return staff_public(account)


@router.post(
    f"/{STAFF_ID}/disable",
    responses={
        **problems(
            *STAFF_REFUSALS,
            accounts.OwnAccount,
            accounts.StaffNotFound,
            accounts.AccountDisabled,
            accounts.LastAdmin,
        ),
    },
    summary="Disable an account (admin; not one's own): every session of it ends at once",
)
async def disable_staff(
    staff_id: StaffId, staff: StaffAdmin, tx: TxDep, ctx: CtxDep
) -> StaffPublic:
    return staff_public(
        await invitations.disable_account(tx, ctx, staff=staff, account_id=staff_id)
    )


@router.delete(
    f"/{STAFF_ID}/sessions",
    responses={**STAFF_PROBLEMS, 404: accounts.StaffNotFound.openapi()},
    summary="End every session of an account at once (admin)",
)
async def revoke_sessions(
    staff_id: StaffId, staff: StaffAdmin, tx: TxDep, ctx: CtxDep
) -> SessionsRevokedPublic:
    ended = await sessions.revoke_all(tx, ctx, staff=staff, account_id=staff_id)
    return SessionsRevokedPublic(staff_id=staff_id, sessions_ended=ended)
