"""What every self-service page shares: its language, its CSRF token, the subject's
session cookie, and the headers it is answered with.

- Language: ``?lang=`` (the switch, remembered in a cookie), else the cookie, else the
  first of ja, ko, en in ``Accept-Language``, else Japanese.
- CSRF: a random value in an HttpOnly, SameSite=Strict cookie, and in each form its keyed
  hash (the token key ring) together with the session cookie the browser sends, if any; a
  POST whose field does not match both is refused. So a pair of CSRF cookie and token
  made in one browser and planted in another (a sibling host can set cookies) does not
  pass once that browser has a session. Before either, the browser must say that the
  post comes from our own origin (app.core.origin): a page of the same site could plant
  a pair before the browser holds a cookie of its own and sign it in (login CSRF).
- Session: the subject token in an HttpOnly, SameSite=Strict cookie for /my only.
- What an action did (a flash): a cookie the action's answer sets and the records page
  reads once, keyed to the session, so neither an address nor a reload can claim it.
- The erasure's receipt: shown at its own address (so a reload or the language switch
  does not lose it), found by a cookie keyed to this browser, for 15 minutes, and
  forgotten once the start page is shown or anyone starts to sign in.
- Every answer: ``Cache-Control: no-store`` and a CSP that allows no script at all and
  styles only from the pages' own stylesheet.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Collection
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from app.core.context import Context
from app.core.crypto import same_token
from app.core.errors import AppError
from app.core.origin import from_own_origin
from app.my.texts import LANGUAGES, TEXTS, WORDS, erased_words, kept_why
from app.subject.schemas import ErasureReceiptPublic

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
SESSION_COOKIE = "smsreg_subject"
# Where cookies are Secure the session's is named with the __Host- prefix, which a
# browser takes only from this very host, over https, for path / and with no Domain:
# another host of the site (the coupon site, which can set a cookie for the whole
# registrable domain) cannot plant its own session in a visitor's browser and have the
# visitor act on its records (login CSRF). The plain name is never read there.
HOST_SESSION_COOKIE = "__Host-smsreg_subject"
CSRF_COOKIE = "smsreg_csrf"
# The verification whose code the code page asks for: a cookie, not the address, which
# a shared browser's history would keep.
PENDING_COOKIE = "smsreg_pending"
LANG_COOKIE = "smsreg_lang"
FLASH_COOKIE = "smsreg_flash"
RECEIPT_COOKIE = "smsreg_receipt"
PATH = "/my"
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # For browsers that predate frame-ancestors: the pages are never framed (clickjacking).
    "X-Frame-Options": "DENY",
    # No address goes to another site; our own forms send their origin, which
    # app.core.origin checks (under no-referrer a browser sends "Origin: null").
    "Referrer-Policy": "same-origin",
}


class CsrfRefused(AppError):
    status = 403
    slug = "csrf-refused"
    title = "The form's CSRF token is missing or wrong"


class CrossOrigin(CsrfRefused):
    """A form posted from a page not our own (the browser says so): refused as any
    stale form is, and never taken for a form sent twice (app.my.deps.refusal)."""


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
    return _csrf_mac(ctx, value, session_token(request))


def _csrf_mac(ctx: Context, value: str, session: str) -> str:
    return ctx.keys.token.mac(b"my-csrf:%s\0%s" % (value.encode(), session.encode())).hex()


def made_before_session(ctx: Context, request: Request) -> bool:
    """Whether the POST's CSRF field is the one this browser's forms carried before its
    session began (the sign-in's form sent again once the session was opened)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    field = getattr(request.state, "csrf_field", None)
    return bool(value) and same_token(_csrf_mac(ctx, value, ""), field)


def shaped_like_a_token(request: Request) -> bool:
    """Whether the POST came with a CSRF cookie and a field shaped as our forms' tokens
    (a form of ours, whose session the browser no longer names)."""
    field = getattr(request.state, "csrf_field", None) or ""
    return bool(request.cookies.get(CSRF_COOKIE)) and _TOKEN_SHAPE.fullmatch(field) is not None


_TOKEN_SHAPE = re.compile(r"[0-9a-f]{64}")


def check_csrf(ctx: Context, request: Request, field: str | None) -> None:
    """Refuse a POST from a page not our own, or whose CSRF field is missing or does not
    match the browser's cookies."""
    if not from_own_origin(request):
        raise CrossOrigin()
    request.state.csrf_field = field  # for a refusal's page (made_before_session)
    value = request.cookies.get(CSRF_COOKIE, "")
    if not value or not same_token(csrf_token(ctx, request, value), field):
        raise CsrfRefused()


def session_token(request: Request) -> str:
    """The session cookie's token ("" if there is none)."""
    return request.cookies.get(_session_cookie(request)[0], "")


def _session_cookie(request: Request) -> tuple[str, str]:
    """The session cookie's name and path (see HOST_SESSION_COOKIE)."""
    return (HOST_SESSION_COOKIE, "/") if _secure(request) else (SESSION_COOKIE, PATH)


def _secure(request: Request) -> bool:
    """Cookies are Secure (https only) outside development, whatever scheme the request
    arrived with: behind a proxy that ends TLS and is not in SMSREG_TRUSTED_PROXIES the
    service sees http. In development, over https only (plain http locally)."""
    ctx: Context = request.app.state.ctx
    return ctx.settings.environment != "development" or request.url.scheme == "https"


_FAULT = Markup(' aria-invalid="true" aria-describedby="error" autofocus')


def page(
    request: Request,
    ctx: Context,
    name: str,
    *,
    status: int = 200,
    here: str | None = None,
    invalid: Collection[str] = (),
    **values: Any,
) -> HTMLResponse:
    """Render a page in the request's language, with its CSRF token and headers.

    ``here`` is the address the language switch links to: the page's own for a GET;
    for an answer to a POST, the address that shows the same step again (the code form,
    the records), or None, and the page has no switch, for an answer that no address
    shows again (a refusal of a form already spent). ``invalid`` names the fields the
    refusal is about: marked invalid, described by it, and focused.
    """
    lang = language(request)
    value = csrf_value(request)
    if here is None and request.method == "GET":
        here = request.url.path
    t = TEXTS[lang]
    response = templates.TemplateResponse(
        request,
        name,
        {
            "t": t,
            "lang": lang,
            "here": here,
            "csrf": csrf_token(ctx, request, value),
            "service": ctx.settings.service_name,
            "word": lambda name: WORDS[lang].get(str(name), str(name)),
            "when": lambda instant: unbroken(when(instant, lang=lang)),
            "counted": lambda key, n: unbroken(t[f"{key}_one"] if n == 1 else t[key].format(n=n)),
            "unbroken": unbroken,
            "fault": lambda field: _FAULT if field in invalid else "",
            "contact": ctx.settings.privacy_contact,
            "kept_days": ctx.settings.coupon_limit_memory_days,
            "policy": ctx.settings.privacy_policy_url,
            **values,
        },
        status_code=status,
        headers=HEADERS,
    )
    finish(request, response, csrf=value, lang=lang)
    return response


def when(instant: dt.datetime | str | None, *, lang: str = "en") -> str:
    """An instant as a person reads it: to the minute, in the time of Japan and Korea
    (the service's regions share UTC+9), labelled as each language says it."""
    if instant is None:
        return ""
    if isinstance(instant, str):
        instant = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    shown = instant.astimezone(_SHOWN_IN)
    if lang == "ja":
        return f"{shown.year}年{shown.month}月{shown.day}日 {shown:%H:%M}（日本時間）"
    if lang == "ko":
        return f"{shown.year}년 {shown.month}월 {shown.day}일 {shown:%H:%M} (한국 시간)"
    return shown.strftime("%Y-%m-%d %H:%M (UTC+9)")


_SHOWN_IN = dt.timezone(dt.timedelta(hours=9))

# What a line must not split: a date at its hyphens ("2026-12-" / "07") or between its
# parts (Chromium's phrase breaking at 390 px split "2026年12月" / "7日" and "2026年" /
# "12月7日", and Korean breaks at its spaces), a number from its counter ("1か" / "月間").
_UNBROKEN = re.compile(
    r"\d{4}-\d\d-\d\d|\d{4}年\d{1,2}月\d{1,2}日|\d{4}년 \d{1,2}월 \d{1,2}일"
    r"|(?<![\d年月])\d+(?:か月|ヶ月|[年日件回人分])間?(?![\d月])"
)


def unbroken(text: str) -> Markup:
    """``text`` escaped for a page, each date and each number with its counter in it kept
    on one line (a span my.css does not wrap)."""
    parts, done = [], 0
    for found in _UNBROKEN.finditer(text):
        parts += [escape(text[done : found.start()]), _NOWRAP.format(found.group())]
        done = found.end()
    return Markup("").join([*parts, escape(text[done:])])


_NOWRAP = Markup('<span class="nb">{}</span>')


def receipt_lines(
    receipt: ErasureReceiptPublic, lang: str
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The receipt as a person reads it: what went and what is kept, each in words with
    its count, leaving out what there was none of; the tables one line names (the send
    limits' two) are counted together."""
    erased: dict[str, int] = {}
    for table, count in receipt.erased.items():
        label = erased_words(lang, table) or table
        erased[label] = erased.get(label, 0) + count
    kept = [(kept_why(lang, k.what, k.why), k.count) for k in receipt.kept]
    return [(w, n) for w, n in erased.items() if n], [(w, n) for w, n in kept if n]


def _signed_message(purpose: bytes, value: str, bound: str) -> bytes:
    """What a cookie's MAC covers: its purpose (flash, receipt), value and binding."""
    return b"my-%s:%s\0%s" % (purpose, value.encode(), bound.encode())


def _signed(ctx: Context, purpose: bytes, value: str, bound: str) -> str:
    """``value`` with a MAC of the token key ring over it and what it is ``bound`` to."""
    mac = ctx.keys.token.mac(_signed_message(purpose, value, bound))
    return f"{value}.{mac.hex()}"


def _verified(ctx: Context, purpose: bytes, cookie: str, bound: str) -> str | None:
    """The value of a cookie :func:`_signed` made, under any key of the ring, or None."""
    value, _, mac = cookie.rpartition(".")
    if not value or not cookie.isascii():
        return None
    ring = ctx.keys.token
    message = _signed_message(purpose, value, bound)
    for key_id in ring.ids():
        if same_token(ring.mac(message, key_id=key_id).hex(), mac):
            return value
    return None


def set_flash(
    ctx: Context, request: Request, response: Response, key: str, *, ending: bool = False
) -> None:
    """What the next page is to say once, after an action the server carried out: keyed
    to this session (``ending``: to none, for the page after the session ends), so a link
    cannot claim an action, another session cannot replay it, and it is shown once (a
    reload says nothing again)."""
    session = "" if ending else session_token(request)
    _keep(request, response, FLASH_COOKIE, _signed(ctx, b"flash", key, session))


def flash(ctx: Context, request: Request) -> str | None:
    """What the last action did (see :func:`set_flash`), if this session's action said it."""
    return _read_signed(ctx, request, FLASH_COOKIE, b"flash", bound=session_token(request))


def forget_flash(request: Request, response: Response) -> None:
    """Forget the flash once its page is answered."""
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=PATH)


def set_receipt(ctx: Context, request: Request, response: Response, receipt_id: str) -> None:
    """Remember the erasure's receipt for its page, keyed to this browser's CSRF cookie
    (the session is gone with the erasure)."""
    bound = request.cookies.get(CSRF_COOKIE, "")
    _keep(request, response, RECEIPT_COOKIE, _signed(ctx, b"receipt", receipt_id, bound))


def receipt_id(ctx: Context, request: Request) -> str | None:
    """The receipt this browser's erasure gave it (see :func:`set_receipt`), or None."""
    bound = request.cookies.get(CSRF_COOKIE, "")
    return _read_signed(ctx, request, RECEIPT_COOKIE, b"receipt", bound=bound)


def _read_signed(
    ctx: Context, request: Request, name: str, purpose: bytes, *, bound: str
) -> str | None:
    """The value of the signed cookie ``name``, bound to the value ``bound``, or None."""
    cookie = request.cookies.get(name)
    if cookie is None:
        return None
    return _verified(ctx, purpose, cookie, bound)


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
    name, path = _session_cookie(request)
    _keep(request, response, name, token, path=path)
    forget_receipt(request, response)


def forget_receipt(request: Request, response: Response) -> None:
    """Forget an erasure's receipt once someone starts to sign in, or the start page is
    shown: the next user of a shared browser must not be shown the last one's."""
    if RECEIPT_COOKIE in request.cookies:
        response.delete_cookie(RECEIPT_COOKIE, path=PATH)


def clear_session(request: Request, response: Response) -> None:
    """Forget the session cookie."""
    name, path = _session_cookie(request)
    response.delete_cookie(name, path=path, secure=_secure(request))


def set_pending(request: Request, response: Response, verification_id: str) -> None:
    """Remember the verification the code page is for (until the browser closes)."""
    _keep(request, response, PENDING_COOKIE, verification_id)
    forget_receipt(request, response)


def forget_pending(response: Response) -> None:
    """Forget the verification the code page was for (its code is used)."""
    response.delete_cookie(PENDING_COOKIE, path=PATH)


def _keep(request: Request, response: Response, name: str, value: str, path: str = PATH) -> None:
    # The pages' own cookies: for /my only (but the session's, see HOST_SESSION_COOKIE),
    # never read by a script or sent from another site, https outside development, and
    # gone when the browser closes.
    response.set_cookie(
        name, value, path=path, httponly=True, samesite="strict", secure=_secure(request)
    )
