"""Who is signed in to the console, and the CSRF token every form carries.

The console's session is an ordinary staff session (app.staff.sessions): its token
lives in a cookie (HttpOnly, SameSite=Strict, Path=/console, Secure outside
development) instead of an Authorization header, and is checked by the very role sets
and session rules of the API (app.staff.auth.StaffRoles), on every request.

Every form carries a CSRF token: for a signed-in person a keyed hash of their session's
id (so it dies with the session), before sign-in a keyed hash of a random cookie set
with the form (double submit). SameSite=Strict already keeps the cookie off other
sites' requests; the token holds even where a browser ignores SameSite. Before the
token, the browser must say that the form comes from our own origin (app.core.origin,
as /my/'s): a page of the same site (a sibling host, another port) can plant a
pre-sign-in cookie and its token, and so sign a browser in to its own account.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Form, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials

from app.core.context import Context
from app.core.crypto import same_token
from app.core.deps import CtxDep, DbDep, TxDep
from app.core.errors import AppError, Unauthenticated
from app.core.http import refuse_repeated_fields
from app.core.origin import from_own_origin
from app.core.tx import Tx
from app.staff import roles
from app.staff.auth import Staff, StaffRoles
from app.staff.roles import Role

SESSION_COOKIE = "smsreg_console"
PRE_COOKIE = "smsreg_console_pre"  # the double-submit value of the forms before sign-in
COOKIE_PATH = "/console"
MAX_CSRF_LENGTH = 128


class CsrfFailed(AppError):
    status = 400
    slug = "csrf-failed"
    title = "The form's security token is missing or stale: reload the page and try again"


session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False)
SessionToken = Annotated[str | None, Depends(session_cookie)]
# No length of its own: a token of any length that does not match is a 400 csrf-failed
# like any other (the body's size cap bounds it).
CsrfField = Annotated[str | None, Form()]


def csrf_token(ctx: Context, binding: str) -> str:
    """The CSRF token of forms bound to a session id (or a pre-sign-in cookie value)."""
    return ctx.keys.token.mac(b"console-csrf\n" + binding.encode()).hex()


def check_csrf(ctx: Context, request: Request, *, binding: str | None, sent: str | None) -> None:
    """Refuse a form posted from a page not our own, or whose token does not match its
    binding (CsrfFailed, nothing written)."""
    if not from_own_origin(request):
        raise CsrfFailed()  # a page not our own: the token is not even looked at
    if not binding or not same_token(csrf_token(ctx, binding), sent):
        raise CsrfFailed()


def secure_cookies(ctx: Context) -> bool:
    """Cookies are Secure (https only) everywhere but in development (plain http locally)."""
    return ctx.settings.environment != "development"


def set_session_cookie(response: Response, ctx: Context, *, token: str) -> None:
    """Hand the browser its session: a cookie no script can read, sent to the console only."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ctx.settings.session_max_hours * 3600,
        path=COOKIE_PATH,
        secure=secure_cookies(ctx),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, ctx: Context) -> None:
    """Forget the session in the browser (it has ended on the server already)."""
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, secure=secure_cookies(ctx), httponly=True,
        samesite="strict",
    )  # fmt: skip


def pre_binding(request: Request) -> tuple[str, bool]:
    """The pre-sign-in cookie's value, and whether it is new (to be set on the answer)."""
    value = request.cookies.get(PRE_COOKIE)
    if value and len(value) <= MAX_CSRF_LENGTH:
        return value, False
    return secrets.token_urlsafe(24), True


def set_pre_cookie(response: Response, ctx: Context, *, value: str) -> None:
    """Hand the browser the pre-sign-in value its forms' tokens are bound to."""
    response.set_cookie(
        PRE_COOKIE, value, path=COOKIE_PATH, secure=secure_cookies(ctx), httponly=True,
        samesite="strict",
    )  # fmt: skip


async def check_pre_form(request: Request, ctx: CtxDep, csrf: CsrfField = None) -> None:
    """A form sent before sign-in (sign-in, invitation) carries its double-submit token,
    and no field twice."""
    check_csrf(ctx, request, binding=request.cookies.get(PRE_COOKIE), sent=csrf)
    await refuse_repeated_fields(request)


PreForm = Depends(check_pre_form)


class ConsoleRoles:
    """A console page for these roles: the cookie's session, checked as the API checks."""

    def __init__(self, allowed: frozenset[Role], *, restricted_ok: bool = False) -> None:
        self.check = StaffRoles(allowed, restricted_ok=restricted_ok)

    async def __call__(
        self, request: Request, token: SessionToken, tx: TxDep, ctx: CtxDep
    ) -> Staff:
        return await self.admit(request, tx, ctx, token)

    async def admit(self, request: Request, tx: Tx, ctx: Context, token: str | None) -> Staff:
        """The signed-in member, if the session is live and the role may; kept on the
        request for a refusal's page, which shows the menu and who is signed in."""
        if token is None:
            raise Unauthenticated("sign in to the console first")
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        staff = await self.check.admit(tx, ctx, credentials)
        request.state.staff = staff
        return staff


# The console's form fields a list is read from (checkboxes of one name).
LIST_FIELDS = frozenset({"data_items", "scopes"})


class ConsoleForm(ConsoleRoles):
    """A form of a console page: the session first, then the form's CSRF token, then no
    field given twice."""

    async def __call__(
        self,
        request: Request,
        token: SessionToken,
        tx: TxDep,
        ctx: CtxDep,
        csrf: CsrfField = None,
    ) -> Staff:
        staff = await self.admit(request, tx, ctx, token)
        check_csrf(ctx, request, binding=staff.session_id, sent=csrf)
        await refuse_repeated_fields(request, lists=LIST_FIELDS)
        return staff


class ConsoleFormApart(ConsoleRoles):
    """The same in a short transaction of its own, for a form that hashes a password
    (the flow checks the session again when it writes: app.staff.login)."""

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        token: SessionToken,
        db: DbDep,
        ctx: CtxDep,
        csrf: CsrfField = None,
    ) -> Staff:
        async with db.transaction() as tx:
            staff = await self.admit(request, tx, ctx, token)
        check_csrf(ctx, request, binding=staff.session_id, sent=csrf)
        await refuse_repeated_fields(request, lists=LIST_FIELDS)
        return staff


def form(allowed: frozenset[Role]) -> object:
    """The dependency of a signed-in form for these roles (session, then CSRF)."""
    return Depends(ConsoleForm(allowed))


AnyPage = Annotated[Staff, Depends(ConsoleRoles(roles.ALL_ROLES))]
OwnPage = Annotated[Staff, Depends(ConsoleRoles(roles.ALL_ROLES, restricted_ok=True))]
OwnForm = Annotated[Staff, Depends(ConsoleForm(roles.ALL_ROLES, restricted_ok=True))]
AnyForm = Annotated[Staff, Depends(ConsoleForm(roles.ALL_ROLES))]
OwnPasswordForm = Annotated[Staff, Depends(ConsoleFormApart(roles.ALL_ROLES, restricted_ok=True))]
