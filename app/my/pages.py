"""What every self-service page shares: its language, its CSRF token, the subject's
session cookie, and the headers it is answered with.

- Language: ``?lang=`` (the switch, remembered in a cookie), else the cookie, else the
  first of ja, ko, en in ``Accept-Language``, else Japanese.
- CSRF: a random value in an HttpOnly, SameSite=Strict cookie, and in each form its keyed
  hash (the token key ring) together with the session cookie the browser sends, if any; a
  POST whose field does not match both is refused. So a pair of CSRF cookie and token
  made in one browser and planted in another (a sibling host can set cookies) does not
  pass once that browser has a session.
- Session: the subject token in an HttpOnly, SameSite=Strict cookie for /my only.
- Every answer: ``Cache-Control: no-store`` and a CSP that allows no script at all.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.core.context import Context
from app.core.crypto import same_token
from app.core.errors import AppError
from app.my.texts import LANGUAGES, TEXTS, WORDS

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
SESSION_COOKIE = "smsreg_subject"
CSRF_COOKIE = "smsreg_csrf"
# The verification whose code the code page asks for: a cookie, not the address, which
# a shared browser's history would keep.
PENDING_COOKIE = "smsreg_pending"
LANG_COOKIE = "smsreg_lang"
PATH = "/my"
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # For browsers that predate frame-ancestors: the pages are never framed (clickjacking).
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class CsrfRefused(AppError):
    status = 403
    slug = "csrf-refused"
    title = "The form's CSRF token is missing or wrong"


def language(request: Request) -> str:
    """The page's language (see the module's docstring)."""
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if asked in LANGUAGES:
        return asked
    weighted = []
    for i, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        code = tag.strip()[:2].lower()
        if code in LANGUAGES and q > 0:
            weighted.append((-q, i, code))
    return min(weighted)[2] if weighted else "ja"


def csrf_value(request: Request) -> str:
    """This browser's CSRF cookie value (a new one when it has none yet)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(existing) <= 100 and existing.isascii():
        return existing
    cached = getattr(request.state, "csrf_new", None)
    if cached is None:
        cached = secrets.token_urlsafe(32)
        request.state.csrf_new = cached
    return str(cached)


def csrf_token(ctx: Context, request: Request, value: str) -> str:
    """The form field a CSRF cookie value must come with, in the session (or none) of
    ``request``'s session cookie."""
    session = request.cookies.get(SESSION_COOKIE, "")
    return ctx.keys.token.mac(b"my-csrf:%s\0%s" % (value.encode(), session.encode())).hex()


def check_csrf(ctx: Context, request: Request, field: str | None) -> None:
    """Refuse a POST whose CSRF field is missing or does not match the browser's cookies."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if not value or not same_token(csrf_token(ctx, request, value), field):
        raise CsrfRefused()


def _secure(request: Request) -> bool:
    """Cookies are Secure (https only) outside development, whatever scheme the request
    arrived with: behind a proxy that ends TLS and is not in SMSREG_TRUSTED_PROXIES the
    service sees http. In development, over https only (plain http locally)."""
    ctx: Context = request.app.state.ctx
    return ctx.settings.environment != "development" or request.url.scheme == "https"


def page(
    request: Request, ctx: Context, name: str, *, status: int = 200, **values: Any
) -> HTMLResponse:
    """Render a page in the request's language, with its CSRF token and headers."""
    lang = language(request)
    value = csrf_value(request)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "t": TEXTS[lang],
            "lang": lang,
            "csrf": csrf_token(ctx, request, value),
            "service": ctx.settings.service_name,
            "word": lambda name: WORDS[lang].get(str(name), str(name)),
            "when": when,
            "contact": ctx.settings.privacy_contact,
            "policy": ctx.settings.privacy_policy_url,
            **values,
        },
        status_code=status,
        headers=HEADERS,
    )
    finish(request, response, csrf=value, lang=lang)
    return response


def when(instant: dt.datetime | str | None) -> str:
    """An instant as a person reads it: to the minute, in Japan's time (the service's
    regions, Japan and Korea, share it), labelled."""
    if instant is None:
        return ""
    if isinstance(instant, str):
        instant = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return instant.astimezone(_SHOWN_IN).strftime("%Y-%m-%d %H:%M (UTC+9)")


_SHOWN_IN = dt.timezone(dt.timedelta(hours=9))


def finish(request: Request, response: Response, *, csrf: str, lang: str) -> None:
    """Set the CSRF and language cookies an answer carries."""
    if request.cookies.get(CSRF_COOKIE) != csrf:
        _keep(request, response, CSRF_COOKIE, csrf)
    if request.query_params.get("lang") == lang:
        response.set_cookie(
            LANG_COOKIE, lang, path=PATH, samesite="strict", secure=_secure(request)
        )


def redirect(url: str) -> RedirectResponse:
    """A 303 to another page (after a POST), with the pages' headers."""
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def set_session(request: Request, response: Response, token: str) -> None:
    """Keep the subject token in a session cookie: gone when the browser closes (a shared
    phone or a kiosk), and the session itself ends on the server after its minutes."""
    _keep(request, response, SESSION_COOKIE, token)


def clear_session(response: Response) -> None:
    """Forget the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path=PATH)


def set_pending(request: Request, response: Response, verification_id: str) -> None:
    """Remember the verification the code page is for (until the browser closes)."""
    _keep(request, response, PENDING_COOKIE, verification_id)


def forget_pending(response: Response) -> None:
    """Forget the verification the code page was for (its code is used)."""
    response.delete_cookie(PENDING_COOKIE, path=PATH)


def _keep(request: Request, response: Response, name: str, value: str) -> None:
    # The pages' own cookies: for /my only, never read by a script or sent from another
    # site, https outside development, and gone when the browser closes.
    response.set_cookie(
        name, value, path=PATH, httponly=True, samesite="strict", secure=_secure(request)
    )
