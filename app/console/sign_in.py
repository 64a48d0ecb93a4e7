"""/console sign-in: password and TOTP, sign-out, and the language switch.

Signing in runs the API's own login (app.staff.login.log_in): the same throttles, the
same single answer for every wrong credential. The session token goes into an HttpOnly
cookie and never into a page. A restricted session (an expired password, TOTP still to
enrol) is sent straight to the page that fixes it.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from app.console import i18n
from app.console.auth import (
    OwnForm,
    PreForm,
    clear_session_cookie,
    secure_cookies,
    set_session_cookie,
)
from app.console.web import ConsoleRoute, pre_form, render
from app.core.context import Context
from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.credentials import passwords
from app.credentials.totp import TotpRequired
from app.staff import login, sessions
from app.staff.auth import TOTP_ENROLMENT_REQUIRED
from app.staff.schemas import TYPED_USERNAME

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

Username = Annotated[str, Form(min_length=1, max_length=64, pattern=TYPED_USERNAME)]
Password = Annotated[str, Form(min_length=1, max_length=passwords.MAX_PASSWORD_LENGTH)]
OptionalCode = Annotated[str | None, Form(max_length=32)]


def login_page(
    request: Request, ctx: Context, *, message: str | None = None, status_code: int = 200
) -> Response:
    """The sign-in form."""
    return pre_form(request, ctx, "login.html", {"message": message}, status_code=status_code)


@router.get("/login")
async def login_form(
    request: Request, ctx: CtxDep, ended: Annotated[bool, Query()] = False
) -> Response:
    # Led here from a page whose session had ended: said, so the sign-in is not a mystery.
    return login_page(request, ctx, message="session_ended" if ended else None)


@router.post("/login", dependencies=[PreForm])
async def sign_in(
    request: Request,
    db: DbDep,
    ctx: CtxDep,
    ip: ClientIp,
    username: Username,
    password: Password,
    totp: OptionalCode = None,
    recovery_code: OptionalCode = None,
) -> Response:
    try:
        new = await login.log_in(
            db, ctx, username=username, password=password, ip=ip,
            totp_code=totp or None, recovery_code=recovery_code or None,
        )  # fmt: skip
    except TotpRequired:
        return login_page(request, ctx, message="code_needed", status_code=401)
    except sessions.InvalidCredentials:
        # The form again, with what went wrong (the failure is counted: log_in's units).
        return login_page(request, ctx, message="wrong_login", status_code=401)
    target = "/console/"
    if passwords.PASSWORD_EXPIRED in new.staff.restrictions:
        target = "/console/account/password"
    elif TOTP_ENROLMENT_REQUIRED in new.staff.restrictions:
        target = "/console/account/totp"
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, ctx, token=new.token)
    return response


@router.post("/logout")
async def sign_out(request: Request, staff: OwnForm, tx: TxDep, ctx: CtxDep) -> Response:
    await sessions.logout(tx, ctx, staff=staff)
    response = render(request, "message.html", {"message": "signed_out"})
    clear_session_cookie(response, ctx)
    return response


@router.get("/language/{lang}")
async def switch_language(
    ctx: CtxDep,
    lang: Annotated[str, Path(pattern="^(en|ja)$")],
    back: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    # A link, not a form: it only picks the words of the pages that follow, and goes back
    # to the console page it was on (a path of the console's own, never another site).
    here = back if back and _CONSOLE_PATH.fullmatch(back) else "/console/"
    response = RedirectResponse(here, status_code=303)
    response.set_cookie(
        i18n.LANG_COOKIE, lang, max_age=365 * 86400, path="/console", samesite="strict",
        httponly=True, secure=secure_cookies(ctx),
    )  # fmt: skip
    return response


# A console page's path and query: segments of letters, digits, "_" and "-" only (no "..",
# no "//", no backslash: never outside /console), then a form-encoded query.
_CONSOLE_PATH = re.compile(r"/console(/[A-Za-z0-9_\-]+)*/?(\?[A-Za-z0-9_\-.~=&%+:,]*)?")
