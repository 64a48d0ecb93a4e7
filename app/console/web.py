"""What every console page shares: templates, language, security headers, error pages.

Every console route is a :class:`ConsoleRoute`: its answers carry a Content-Security-Policy
that allows no inline script (scripts and styles only from /console/static), forbid
framing and caching (``no-store``: pages show personal data and one-time secrets), and
its refusals (an ``AppError`` or invalid form fields) are rendered as an HTML page with
the same status for a browser, or as the API's problem document for any other client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import iter_route_contexts
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from starlette.routing import Match

from app.console import i18n
from app.console.auth import (
    SESSION_COOKIE,
    clear_session_cookie,
    csrf_token,
    pre_binding,
    set_pre_cookie,
)
from app.core.context import Context
from app.core.error_handlers import PageRoute, invalid_input, problem_response
from app.core.errors import AppError, InvalidInput, Unauthenticated
from app.core.tx import Tx
from app.staff import roles
from app.staff.auth import Staff
from app.staff.invitations import InvalidInvitation

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def when(instant: dt.datetime | str | None, *, seconds: bool = False) -> str:
    """An instant on a console page: to the minute (or second), labelled UTC, which is
    what the exports and the logs say too (one kept as JSON text, a receipt's, too)."""
    if instant is None:
        return "—"
    if isinstance(instant, str):
        instant = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    shown = instant.astimezone(dt.UTC)
    return shown.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


templates.env.globals["when"] = when

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Our own forms send their origin, which app.core.origin checks (under no-referrer a
    # browser sends "Origin: null"); no address goes to another site.
    "Referrer-Policy": "same-origin",
}


def language(request: Request) -> str:
    """The language the page is written in."""
    return i18n.choose(
        cookie=request.cookies.get(i18n.LANG_COOKIE),
        accept_language=request.headers.get("accept-language", ""),
    )


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Response:
    """A page in the request's language."""
    lang = language(request)
    values = {"lang": lang, "t": i18n.translator(lang), **(context or {})}
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def pre_form(
    request: Request,
    ctx: Context,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
) -> Response:
    """A form shown before sign-in, with its double-submit CSRF token."""
    value, new = pre_binding(request)
    page = render(
        request, template, {**context, "csrf": csrf_token(ctx, value)}, status_code=status_code
    )
    if new:
        set_pre_cookie(page, ctx, value=value)
    return page


def staff_page(
    request: Request,
    ctx: Context,
    staff: Staff,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Response:
    """A page for a signed-in person: their forms' CSRF token, and the menu their role
    may use (the same role sets the routes check)."""
    role = staff.role
    menu = [
        (href, key)
        for href, key, allowed in NAV
        if role in allowed and not (staff.restrictions and href != "/console/account")
    ]
    values = {"staff": staff, "csrf": csrf_token(ctx, staff.session_id), "menu": menu}
    return render(request, template, {**values, **(context or {})}, status_code=status_code)


# The menu: each page with the roles its route admits.
NAV: tuple[tuple[str, str, frozenset[roles.Role]], ...] = (
    ("/console/", "dashboard", roles.ALL_ROLES),
    ("/console/subscribers", "subscribers", roles.SUBSCRIBER_READ),
    ("/console/access-log", "access_log", roles.ACCESS_LOG_READ),
    ("/console/disclosures", "disclosures", roles.DISCLOSURE_READ),
    ("/console/subject-requests", "subject_requests_page", roles.SUBJECT_REQUESTS_READ),
    ("/console/ledger", "ledger", roles.LEDGER_EXPORT),
    ("/console/staff", "staff", roles.STAFF_READ),
    ("/console/api-keys", "api_keys", roles.STAFF_ADMIN),
    ("/console/pumping", "pumping_blocks", roles.PUMPING_READ),
    ("/console/account", "account", roles.ALL_ROLES),
)


M = TypeVar("M", bound=BaseModel)


def checked(model: type[M], values: Mapping[str, Any], *, location: str = "body") -> M:
    """A form's (or a query's) fields checked by the API's own schema: a bad field is
    refused as the API refuses it, named by its location."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": (location, *error["loc"])} for error in exc.errors()]
        ) from None


def refused_form(
    request: Request,
    ctx: Context,
    staff: Staff,
    template: str,
    context: Mapping[str, Any],
    exc: RequestValidationError | AppError,
) -> Response:
    """A refused form (by its schema, or by a check made before anything is written),
    shown again with what was typed (``typed`` in ``context``) and each field at fault
    named above it: a refusal page threw away a disclosure request's necessity review or
    a subject request's reason."""
    refused = invalid_input(exc) if isinstance(exc, RequestValidationError) else exc
    if not wants_html(request):  # a client, not a browser: the API's problem document
        return problem_response(refused.to_problem(), refused.headers)
    title = i18n.problem_title(language(request), refused.slug, refused.title)
    values = {**context, "refused": refused, "refused_title": title}
    return staff_page(request, ctx, staff, template, values, status_code=refused.status)


def query_form(request: Request, model: type[M]) -> M:
    """A GET form's fields checked by the API's schema. A browser sends the empty fields
    too: they mean no filter."""
    values = {
        name: value
        for name, value in request.query_params.items()
        if value and name in model.model_fields
    }
    return checked(model, values, location="query")


class FormSentAgain(AppError):
    status = 409
    slug = "form-sent-again"
    title = (
        "This form was sent already, and what it asked for is done: a reload, a second "
        "click or a second tab sends it again"
    )
    made = 0  # how many the person has made now: the form shown again carries it


# A form whose every send makes something (a key, a request) carries how many of those
# its person had made when it was shown: :func:`refuse_sent_again`.
Made = Annotated[int, Form(ge=0)]
T = TypeVar("T")


async def refuse_sent_again(
    tx: Tx,
    *,
    form: str,
    actor: str,
    shown_after: int,
    made_by: Callable[[], Awaitable[tuple[int, T | None]]],
    said: Callable[[T], str],
) -> None:
    """Refuse a form sent again (a reload of its answer, a second click, Back and send,
    a second tab): it was shown when its person had made ``shown_after``, and they made
    another since (``made_by``: how many now, and the newest, which ``said`` describes).
    Held until commit, so two sends at once, from two sessions too, make one."""
    await tx.lock(f"console-form:{form}:{actor}")
    made, newest = await made_by()
    if made != shown_after and newest is not None:
        refused = FormSentAgain(said(newest))
        refused.made = made
        raise refused


def made_since_shown(what: str, at: dt.datetime) -> str:
    """How a :class:`FormSentAgain` names what the first send made, and when."""
    return f"{what} at {when(at, seconds=True)}, after this form was shown."


# What a request form refused as sent again adds: sent once more, it makes another.
SEND_AGAIN_IF_MEANT = "Send the form again only if a second request is meant."


# The box a form that cannot be undone carries (offboard, disable, revoke a key): ticked,
# it sends "yes". Browsers refuse to send the form without it (`required`); the server
# refuses it too, so a slip of the mouse on a small button changes nothing.
Confirm = Annotated[str | None, Form(max_length=8)]


def confirmed(value: str | None) -> None:
    """Refuse (422 naming ``confirm``) a form whose confirmation box was not ticked."""
    if value != "yes":
        raise InvalidInput.field("confirm", "tick the box to confirm: this cannot be undone")


def wants_html(request: Request) -> bool:
    """Whether the caller is a browser (a navigation or a form post asks for HTML)."""
    return "text/html" in request.headers.get("accept", "")


# A form whose answer showed something once (a token, recovery codes), sent again by a
# reload: its refusal says what the first send showed and where new ones come from.
# (the form's path, or the start of paths below it; problem type) -> words.
SENT_AGAIN_HINTS: dict[tuple[str, str], str] = {
    ("/console/enrol/confirm", "invalid-invitation"): "hint_invitation_taken_up",
    ("/console/account/totp/confirm", "totp-already-enrolled"): "hint_totp_codes_shown",
    ("/console/account/recovery-codes", "wrong-code"): "hint_recovery_codes_shown",
    ("/console/staff/invitations", "staff-username-taken"): "hint_invitation_shown",
    ("/console/api-keys", "api-key-already-rotated"): "hint_successor_shown",
}


def sent_again_hint(request: Request, exc: AppError) -> str | None:
    """The words for a refusal of a form sent again whose first answer showed a secret."""
    if request.method != "POST":
        return None
    path = request.url.path
    for (start, slug), words in SENT_AGAIN_HINTS.items():
        if exc.slug == slug and (path == start or path.startswith(start + "/")):
            return words
    return None


def _hint(request: Request, exc: AppError) -> str | None:
    if isinstance(exc, InvalidInvitation) and not exc.taken_up:
        # Revoked, expired, unknown, or its admin gone: no account came of it, so there is
        # nothing to sign in to; only a new invitation helps.
        return "hint_invitation_ask_again"
    return sent_again_hint(request, exc)


def error_page(request: Request, exc: AppError) -> Response:
    """A refusal as a page: what was wrong (its title in the page's language), each
    field named, and a way back to the page the refused form is on."""
    title = i18n.problem_title(language(request), exc.slug, exc.title)
    detail = "" if exc.detail == exc.title else exc.detail  # the title, in English again
    context = {
        "status": exc.status,
        "title": title,
        "detail": detail,
        "fields": exc.errors,
        "back": back_to(request),
        # A form refused (403 too) leads back to its page; a page refused to the role, to
        # the account and the dashboard (the page above it is likely refused as well).
        "form": request.method != "GET",
        # Refused for want of a session: sign in again; but an invitation's refusal is
        # to someone who has no account to sign in with yet.
        "sign_in": exc.status == 401 and not request.url.path.startswith("/console/enrol"),
        "hint": _hint(request, exc),
    }
    staff: Staff | None = getattr(request.state, "staff", None)
    if staff is not None and exc.status != 401:
        # Signed in (app.console.auth keeps who on the request): the menu and the name,
        # as on every other page, rather than a page that looked signed out.
        ctx: Context = request.app.state.ctx
        return staff_page(request, ctx, staff, "error.html", context, status_code=exc.status)
    return render(request, "error.html", context, status_code=exc.status)


def back_to(request: Request) -> str:
    """Where a refusal's Back link leads: for a form, the page it is on (``/new`` beside
    a list, the page itself, else the nearest page above it: a request's close form is
    on the request's page); for a page, the nearest page above it. Back led to the
    dashboard, and a newcomer refused on the enrolment page to the sign-in page."""
    path = request.url.path.rstrip("/")
    parts = path.split("/")
    above = ["/".join(parts[:end]) for end in range(len(parts) - 1, 2, -1)]
    # The form's own address is a page only as a fixed one: POST /console/subscribers/
    # search is no subscriber's page, though /console/subscribers/{id} matches it.
    own = [] if request.method == "GET" else [path + "/new", path]
    for candidate in [*own, *above]:
        scope = {**request.scope, "path": candidate, "method": "GET"}
        for route in iter_route_contexts(request.app.routes):
            fixed = route.path_format == candidate
            if route.matches(scope)[0] == Match.FULL and (fixed or candidate not in own):
                return candidate
    return "/console/"


def refusal(request: Request, exc: AppError) -> Response:
    """An AppError for a browser (a page) or another client (a problem document)."""
    if not wants_html(request):
        return problem_response(exc.to_problem(), exc.headers)
    if isinstance(exc, Unauthenticated) and request.method == "GET":
        # A page opened signed out: the sign-in page; once the session has ended (its
        # cookie still came: idle, signed out in another tab, ended by an admin), the
        # sign-in page says so, and the dead cookie is forgotten.
        if SESSION_COOKIE not in request.cookies:
            return RedirectResponse("/console/login", status_code=303)
        ended = RedirectResponse("/console/login?ended=1", status_code=303)
        clear_session_cookie(ended, request.app.state.ctx)
        return ended
    page = error_page(request, exc)
    page.headers.update(exc.headers)
    return page


class ConsoleRoute(PageRoute):
    """A console route: security headers on every answer, refusals as pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped (FastAPI's documented custom route class)."""
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            response = await handler(request)
            response.headers.update(SECURITY_HEADERS)
            return response

        return console_handler

    def refusal(self, request: Request, exc: AppError) -> Response:
        return page_refusal(request, exc)


def page_refusal(request: Request, exc: AppError) -> Response:
    """A console refusal with the pages' security headers (also for a body too large to
    be routed at all: app.main hands this to the body-size cap)."""
    response = refusal(request, exc)
    response.headers.update(SECURITY_HEADERS)
    return response
