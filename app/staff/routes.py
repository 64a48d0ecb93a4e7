"""/v1/staff: log in and out, one's own account, and the admins' management of staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from app.core.db import Row
from app.core.deps import request_ip, runtime_of
from app.core.errors import AUTH_PROBLEMS, InvalidInput
from app.core.http import NO_STORE
from app.staff import accounts, sessions
from app.staff.auth import OwnCredentials, StaffAdmin, StaffRead, as_staff
from app.staff.schemas import (
    LoginRequest,
    MePublic,
    NewSessionPublic,
    PasswordChange,
    PermissionChangePublic,
    RoleChange,
    SessionPublic,
    SessionsRevokedPublic,
    StaffCreate,
    StaffDetailPublic,
    StaffListPublic,
    StaffPublic,
    StaffSummary,
)

router = APIRouter(prefix="/v1/staff", tags=["staff"])
StaffId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^stf_[A-Za-z0-9_\-]+$")]


def _staff_public(row: Row) -> StaffPublic:
    return StaffPublic.model_validate(dict(row))


@router.post(
    "/sessions",
    status_code=201,
    responses={
        401: sessions.InvalidCredentials.openapi(),
        422: InvalidInput.openapi(),
    },
    # An empty requirement: anyone may try to log in.
    openapi_extra={"security": [{}]},
    summary="Log in: a session token, shown once (answers 401 alike for every failure)",
)
async def login(body: LoginRequest, request: Request, response: Response) -> NewSessionPublic:
    rt = runtime_of(request)
    new = await sessions.login(
        rt.db,
        rt.ctx,
        username=body.username,
        password=body.password,
        ip=request_ip(request),
        totp_code=body.totp,
        recovery_code=body.recovery_code,
    )
    response.headers.update(NO_STORE)
    session = new.session
    return NewSessionPublic(
        token=new.token,
        session=SessionPublic(
            id=session.id,
            created_at=session.created_at,
            expires_at=session.expires_at,
            idle_expires_at=sessions.idle_deadline(rt.ctx, session.last_seen_at),
        ),
        staff=StaffSummary(
            id=new.staff.id,
            username=new.staff.username,
            display_name=new.staff.display_name,
            role=new.staff.role,
        ),
        restrictions=list(new.staff.restrictions),
        password_expires_at=new.password_expires_at,
    )


@router.delete(
    "/sessions/current",
    status_code=204,
    responses=AUTH_PROBLEMS,
    summary="Log out: the session ends at once",
)
async def logout(caller: OwnCredentials, request: Request) -> Response:
    rt = runtime_of(request)
    await rt.db.run(as_staff, rt.ctx, caller=caller, action=sessions.logout)
    return Response(status_code=204)


@router.get("/me", responses=AUTH_PROBLEMS, summary="The signed-in account and its session")
async def me(caller: OwnCredentials, request: Request) -> MePublic:
    rt = runtime_of(request)
    row = await rt.db.run(as_staff, rt.ctx, caller=caller, action=sessions.session_of)
    return MePublic.model_validate(dict(row))


@router.put(
    "/me/password",
    responses={**AUTH_PROBLEMS, 422: accounts.WrongPassword.openapi()},
    summary="Change one's own password (ends one's other sessions)",
)
async def change_password(
    body: PasswordChange, caller: OwnCredentials, request: Request
) -> StaffPublic:
    rt = runtime_of(request)
    row = await accounts.change_password(
        rt.db,
        rt.ctx,
        caller=caller,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return _staff_public(row)


@router.post(
    "",
    status_code=201,
    responses={**AUTH_PROBLEMS, 409: accounts.UsernameTaken.openapi(), 422: InvalidInput.openapi()},
    summary="Create a staff account (admin); its role grant is recorded",
)
async def create_staff(body: StaffCreate, caller: StaffAdmin, request: Request) -> StaffPublic:
    rt = runtime_of(request)
    row = await accounts.create_by_admin(
        rt.db,
        rt.ctx,
        caller=caller,
        username=body.username,
        display_name=body.display_name,
        role=body.role.value,
        password=body.password,
    )
    return _staff_public(row)


@router.get("", responses=AUTH_PROBLEMS, summary="Every staff account (admin, auditor)")
async def list_staff(caller: StaffRead, request: Request) -> StaffListPublic:
    rt = runtime_of(request)
    rows = await rt.db.run(as_staff, rt.ctx, caller=caller, action=accounts.list_for)
    return StaffListPublic(staff=[_staff_public(row) for row in rows])


@router.get(
    "/{staff_id}",
    responses={**AUTH_PROBLEMS, 404: accounts.StaffNotFound.openapi()},
    summary="One staff account with its permission history (admin, auditor)",
)
async def read_staff(staff_id: StaffId, caller: StaffRead, request: Request) -> StaffDetailPublic:
    rt = runtime_of(request)
    row, history = await rt.db.run(
        as_staff, rt.ctx, caller=caller, action=accounts.detail, account_id=staff_id
    )
    return StaffDetailPublic(
        **_staff_public(row).model_dump(),
        permission_history=[PermissionChangePublic.model_validate(dict(h)) for h in history],
    )


@router.put(
    "/{staff_id}/role",
    responses={
        **AUTH_PROBLEMS,
        404: accounts.StaffNotFound.openapi(),
        409: accounts.LastAdmin.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Change an account's role (admin; not one's own); recorded in its history",
)
async def change_role(
    staff_id: StaffId, body: RoleChange, caller: StaffAdmin, request: Request
) -> StaffPublic:
    rt = runtime_of(request)
    row = await rt.db.run(
        as_staff,
        rt.ctx,
        caller=caller,
        action=accounts.change_role,
        account_id=staff_id,
        role=body.role,
    )
    return _staff_public(row)


@router.post(
    "/{staff_id}/disable",
    responses={
        **AUTH_PROBLEMS,
        404: accounts.StaffNotFound.openapi(),
        409: accounts.AccountDisabled.openapi(),
    },
    summary="Disable an account (admin; not one's own): every session of it ends at once",
)
async def disable_staff(staff_id: StaffId, caller: StaffAdmin, request: Request) -> StaffPublic:
    rt = runtime_of(request)
    row = await rt.db.run(
        as_staff, rt.ctx, caller=caller, action=accounts.disable, account_id=staff_id
    )
    return _staff_public(row)


@router.delete(
    "/{staff_id}/sessions",
    responses={**AUTH_PROBLEMS, 404: accounts.StaffNotFound.openapi()},
    summary="End every session of an account at once (admin)",
)
async def revoke_sessions(
    staff_id: StaffId, caller: StaffAdmin, request: Request
) -> SessionsRevokedPublic:
    rt = runtime_of(request)
    ended = await rt.db.run(
        as_staff, rt.ctx, caller=caller, action=sessions.revoke_all, account_id=staff_id
    )
    return SessionsRevokedPublic(staff_id=staff_id, sessions_ended=ended)
