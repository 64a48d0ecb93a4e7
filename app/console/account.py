"""/console/account: one's own password and second factor; /console/enrol: an invitation.

The pages run the API's services (app.staff.login, app.staff.second_factor,
app.staff.invitations). A restricted session may use these and nothing else. Secrets
shown once (a TOTP secret and its QR code, recovery codes) are in a page that no
browser or proxy keeps (``no-store``, on every console answer).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from app.console.auth import AnyForm, OwnForm, OwnPage, OwnPasswordForm, PreForm
from app.console.web import (
    ConsoleRoute,
    FormSentAgain,
    made_since_shown,
    pre_form,
    render,
    staff_page,
)
from app.core.context import Context
from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.core.errors import InvalidInput
from app.credentials import passwords
from app.credentials.totp import Enrolment
from app.staff import accounts, invitations, login, second_factor, sessions
from app.staff.auth import Staff

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

Password = Annotated[str, Form(min_length=1, max_length=passwords.MAX_PASSWORD_LENGTH)]
Code = Annotated[str, Form(min_length=1, max_length=16)]
Token = Annotated[str, Form(min_length=1, max_length=invitations.MAX_TOKEN_LENGTH)]


def same_twice(password: str, repeated: str) -> None:
    """A new password typed twice alike: the field hides what is typed, and a typo set a
    password nobody knew, with no way back but a new invitation."""
    if repeated != password:
        raise InvalidInput.field("repeat_password", "must be the same as the new password")


def qr_code(uri: str) -> str:
    """The provisioning URI as a QR code, an SVG data URI for an <img> (no script)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5)


async def _overview(
    request: Request, tx: TxDep, ctx: Context, staff: Staff, **extra: object
) -> Response:
    me = await sessions.me(tx, ctx, staff=staff)
    totp = await second_factor.status(tx, ctx, staff=staff)
    return staff_page(request, ctx, staff, "account.html", {"me": me, "totp": totp, **extra})


@router.get("/account")
async def account(
    request: Request,
    staff: OwnPage,
    tx: TxDep,
    ctx: CtxDep,
    done: Annotated[Literal["password"] | None, Query()] = None,
) -> Response:
    return await _overview(request, tx, ctx, staff, done=done)


@router.get("/account/password")
async def password_form(request: Request, staff: OwnPage, tx: TxDep, ctx: CtxDep) -> Response:
    changed = await accounts.password_changed_at(tx, staff.id)
    return staff_page(request, ctx, staff, "password.html", {"changed": changed.isoformat()})


@router.post("/account/password")
async def change_password(
    request: Request,
    staff: OwnPasswordForm,
    db: DbDep,
    ctx: CtxDep,
    current_password: Password,
    new_password: Password,
    repeat_password: Password,
    changed: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    same_twice(new_password, repeat_password)
    # The form carries when the password was set as it was shown: sent again (a second
    # tab, Back and send) after it changed the password, its current password is the old
    # one, and checking it counted a failure towards the lockout. Neither checked nor
    # counted: said so.
    async with db.transaction() as tx:
        now_changed = await accounts.password_changed_at(tx, staff.id)
    if changed and changed != now_changed.isoformat():
        raise FormSentAgain(
            f"{made_since_shown('Your password was changed', now_changed)} The new one is in "
            "use: this send was neither checked nor counted."
        )
    await login.change_password(
        db, ctx, staff=staff, current_password=current_password, new_password=new_password
    )
    return RedirectResponse("/console/account?done=password", status_code=303)


@router.get("/account/totp")
async def totp_page(request: Request, staff: OwnPage, tx: TxDep, ctx: CtxDep) -> Response:
    return await _overview(request, tx, ctx, staff)


@router.post("/account/totp")
async def start_totp(request: Request, staff: OwnForm, tx: TxDep, ctx: CtxDep) -> Response:
    new = await second_factor.start_enrolment(tx, ctx, staff=staff)
    context = {
        "secret": new.secret,
        "qr": qr_code(new.provisioning_uri),
        "action": "/console/account/totp/confirm",
    }
    return staff_page(request, ctx, staff, "totp_enrol.html", context)


@router.post("/account/totp/confirm")
async def confirm_totp(
    request: Request, staff: OwnForm, tx: TxDep, ctx: CtxDep, code: Code
) -> Response:
    try:
        codes = await second_factor.confirm_enrolment(tx, ctx, staff=staff, code=code)
    except InvalidInput as wrong:
        # The same secret again, with the error: the app already holds it.
        again = await second_factor.pending_enrolment(tx, ctx, staff=staff)
        if again is None:
            raise
        context = _enrol_page(again, action="/console/account/totp/confirm", error=wrong)
        return staff_page(request, ctx, staff, "totp_enrol.html", context, status_code=422)
    return staff_page(request, ctx, staff, "recovery_codes.html", {"codes": codes})


@router.post("/account/recovery-codes")
async def new_recovery_codes(
    request: Request, staff: AnyForm, tx: TxDep, ctx: CtxDep, code: Code
) -> Response:
    """Ten new recovery codes for the old ones, proving a current authenticator code (the
    API's route; the console had none, and a token-key retirement asks for new ones)."""
    codes = await second_factor.new_recovery_codes(tx, ctx, staff=staff, code=code)
    return staff_page(request, ctx, staff, "recovery_codes.html", {"codes": codes})


# -- an invitation, before any session ----------------------------------------------------


@router.get("/enrol")
async def enrol_form(request: Request, ctx: CtxDep) -> Response:
    return pre_form(request, ctx, "enrol.html", {})


@router.post("/enrol", dependencies=[PreForm])
async def enrol_password(
    request: Request,
    db: DbDep,
    ctx: CtxDep,
    token: Token,
    password: Password,
    repeat_password: Password,
) -> Response:
    same_twice(password, repeat_password)
    started = await login.set_invited_password(db, ctx, token=token, password=password)
    context = {
        "secret": started.enrolment.secret,
        "qr": qr_code(started.enrolment.provisioning_uri),
        "token": token,
        "action": "/console/enrol/confirm",
    }
    return pre_form(request, ctx, "totp_enrol.html", context)


@router.post("/enrol/confirm", dependencies=[PreForm])
async def enrol_confirm(
    request: Request, tx: TxDep, ctx: CtxDep, ip: ClientIp, token: Token, code: Code
) -> Response:
    try:
        done = await invitations.complete(tx, ctx, token=token, code=code, ip=ip)
    except InvalidInput as wrong:
        again = await invitations.pending_enrolment(tx, ctx, token=token)
        if again is None:
            raise
        context = {
            **_enrol_page(again, action="/console/enrol/confirm", error=wrong),
            "token": token,
        }
        return pre_form(request, ctx, "totp_enrol.html", context, status_code=422)
    context = {"codes": done.recovery_codes, "active": done.active, "enrolled": True}
    return render(request, "recovery_codes.html", context)


def _enrol_page(enrolment: Enrolment, *, action: str, error: InvalidInput) -> dict[str, Any]:
    """The enrolment page of a pending secret, shown again with what was wrong."""
    return {
        "secret": enrolment.secret,
        "qr": qr_code(enrolment.provisioning_uri),
        "action": action,
        "error": error.detail,
    }
