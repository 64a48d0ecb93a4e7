"""/my/: enter the number, receive the code, see the records, act, erase (after a
confirmation). HTML forms only: every page works without JavaScript and runs none."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.core.context import Context
from app.core.deps import ClientIp, CtxDep, DbDep, OutboxDep, TxDep
from app.core.errors import AppError, InvalidInput, PageRoute, Unauthenticated
from app.core.http import refuse_repeated_fields
from app.core.phone import ValidElsewhere
from app.my import pages
from app.my.texts import LANGUAGES, PROBLEMS, RECEIPT, TEXTS
from app.purposes import Purpose
from app.subject import erasure, register, service, sessions
from app.subject.schemas import RequestKind, SubjectCodeCheck, SubjectStart
from app.subject.sessions import Subject
from app.verification import states


def refusal(request: Request, exc: AppError) -> Response:
    """A refusal as a page in the person's language (also for a body too large to be
    routed at all: app.main hands this to the body-size cap)."""
    ctx: Context = request.app.state.ctx
    if isinstance(exc, pages.CsrfRefused):  # a stale form: its own words, translated
        if request.url.path == "/my/erase" and pages.receipt_id(ctx, request) is not None:
            # The erasure's form sent again once it was done (a second tap, Back and send):
            # its receipt, not "the form has expired", which read as a failed erasure.
            return pages.redirect("/my/receipt")
        page = pages.page(request, ctx, "message.html", status=exc.status, key="csrf")
    else:
        page = pages.page(request, ctx, "message.html", status=exc.status, key="refused",
                          error=_problem(request, exc))  # fmt: skip
    page.headers.update(exc.headers)
    return page


class MyRoute(PageRoute):
    """A /my/ route: a refusal, or a form that does not validate, answers as a page in
    the person's language, never as a JSON problem."""

    def refusal(self, request: Request, exc: AppError) -> Response:
        return refusal(request, exc)


router = APIRouter(prefix="/my", include_in_schema=False, route_class=MyRoute)


async def form_csrf(
    request: Request, ctx: CtxDep, csrf: Annotated[str | None, Form()] = None
) -> None:
    """Every form: its CSRF field matches this browser's cookie, or 403 csrf-refused
    when it is missing or wrong, before any other field is looked at; and no field is
    given twice."""
    pages.check_csrf(ctx, request, csrf)
    await refuse_repeated_fields(request)


CSRF_CHECKED = [Depends(form_csrf)]
# What the records page may say once after an action (a flash: app.my.pages.set_flash),
# by its key in app.my.texts.TEXTS, and whether it is a refusal (said as an alert).
FLASHES = {
    "done_withdraw-delivery": False,
    "done_stop-usage": False,
    "done_stop-provision": False,
    "done_resume-provision": False,
    "done_corrected": False,
    "unchanged": False,
    "correction_taken": True,
    "correction_code_gone": True,
}
# A correction's code refusals after which its code form can do nothing more: the
# records page says so, and the person starts the correction again there.
CODE_GONE = {states.VerificationNotFound.slug, *(error.slug for error in states.NOT_PENDING)}
# A sign-in code's refusals after which its form can do nothing more: the start page
# says why (in its own words: the number is entered there again), and forgets the code.
SIGN_IN_GONE = {
    states.VerificationExpired.slug: "start_again_expired",
    states.AttemptsExhausted.slug: "start_again_exhausted",
    # A second submission of the right code (a double click): the first opened the
    # session. The start page shows the records when its cookie arrived, else says why.
    states.AlreadyApproved.slug: "start_again_used",
}


def _slug(exc: AppError | ValidationError) -> str:
    """A refusal's problem type; the last wrong code (none left) counts as the attempts
    exhausted, since the next check of the same form can only be refused as such."""
    if not isinstance(exc, AppError):
        return ""
    if exc.slug == states.WrongCode.slug and exc.extra.get("attempts_left") == 0:
        return states.AttemptsExhausted.slug
    return exc.slug


ACTIONS = {
    "withdraw-delivery": RequestKind.WITHDRAW_DELIVERY,
    "stop-usage": RequestKind.STOP_USAGE,
    "stop-provision": RequestKind.STOP_PROVISION,
    "resume-provision": RequestKind.RESUME_PROVISION,
}


async def cookie_subject(request: Request, tx: TxDep, ctx: CtxDep) -> Subject | None:
    """The subject of the session cookie, or None (no cookie, or an ended session)."""
    token = request.cookies.get(pages.SESSION_COOKIE)
    if not token:
        return None
    try:
        return await sessions.authenticate(tx, ctx, token=token)
    except Unauthenticated:
        return None


CookieSubject = Annotated[Subject | None, Depends(cookie_subject)]


def _ended(request: Request, ctx: Context) -> Response:
    """A step opened with no live session: the erasure's receipt for the browser that has
    just erased (Back from the receipt told the person to sign in again, with nothing
    left to sign in to), else the words that the session has ended."""
    if request.method == "GET" and pages.receipt_id(ctx, request) is not None:
        return pages.redirect("/my/receipt")
    return pages.page(request, ctx, "message.html", status=401, key="expired")


async def cookie_subject_apart(request: Request, db: DbDep, ctx: CtxDep) -> Subject | None:
    """:func:`cookie_subject` checked in a short unit of its own, for the pages that run
    units of their own (a code sent or checked, then the change)."""
    token = request.cookies.get(pages.SESSION_COOKIE)
    if not token:
        return None
    try:
        async with db.transaction() as tx:
            return await sessions.authenticate(tx, ctx, token=token)
    except Unauthenticated:
        return None


CookieSubjectApart = Annotated[Subject | None, Depends(cookie_subject_apart)]


def _typed_code(code: str) -> str:
    """The code as typed: full-width digits (a Japanese input method's) read as ASCII."""
    return unicodedata.normalize("NFKC", code).strip()


def _fields(exc: AppError | ValidationError) -> list[str]:
    """The form fields a refusal is about (none: the refusal is not about a field)."""
    if isinstance(exc, ValidationError):
        return [str(error["loc"][0]) for error in exc.errors() if error["loc"]]
    if exc.slug == InvalidInput.slug:
        return [problem.field.split(".")[0] for problem in exc.errors]
    return []


def _problem(request: Request, exc: AppError | ValidationError) -> str:
    """A refusal in the page's language (app.my.texts.PROBLEMS): by the fields at fault,
    or by its problem type; never the API's English detail."""
    words = PROBLEMS[pages.language(request)]
    if isinstance(exc, ValidElsewhere):  # a number of the other country: say which
        return words[f"field_phone_in_{exc.region}"]
    if isinstance(exc, AppError) and exc.slug != InvalidInput.slug:
        text = words.get(exc.slug, words["other"])
        retry_after = int(exc.extra.get("retry_after", 60))
        minutes = -(-retry_after // 60)
        return text.format(attempts_left=exc.extra.get("attempts_left", 0), minutes=minutes)
    fields = _fields(exc) or ["?"]
    return " ".join(dict.fromkeys(words.get(f"field_{field}", words["other"]) for field in fields))


@router.get("", include_in_schema=False)
async def my_root() -> RedirectResponse:
    """``/my`` to ``/my/``, with a Location of the path alone (see app.main)."""
    return RedirectResponse("/my/", status_code=307)


@router.get("/static/my.css", include_in_schema=False)
async def my_stylesheet() -> FileResponse:
    """The pages' one stylesheet (the CSP allows no inline style). It may be cached: it
    holds nothing personal."""
    return FileResponse(
        STATIC / "my.css",
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


STATIC = Path(__file__).parent / "static"


@router.get("/", response_class=HTMLResponse)
async def my_start(request: Request, ctx: CtxDep, subject: CookieSubject) -> Response:
    """The number's form; a person still signed in goes to their records instead (the
    start page would hide that the session is live, and a Back link leads here)."""
    if subject is not None:
        lang = request.query_params.get("lang")
        return pages.redirect("/my/records" + (f"?lang={lang}" if lang in LANGUAGES else ""))
    said = pages.flash(ctx, request) or ""
    # Said once: a sign-out, that no records are held under the number just proven, or
    # why the code just tried can do nothing more.
    gone = PROBLEMS[pages.language(request)][said] if said in SIGN_IN_GONE.values() else None
    start = pages.page(request, ctx, "start.html", error=gone,
                       flash=said if said in ("signed_out", "nothing") else None)  # fmt: skip
    pages.forget_receipt(request, start)
    pages.forget_flash(request, start)
    return start


@router.post("/code", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_code(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    ip: ClientIp,
    outbox: OutboxDep,
    country: Annotated[Literal["JP", "KR"], Form()],
    # Missing (a browser that ignores `required`): refused beside the field, as empty.
    phone: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        data = SubjectStart(phone=phone, country=country, locale=pages.language(request))
        sent = await sessions.start_apart(db, ctx, data=data, ip=ip)
    except (AppError, ValidationError) as exc:
        status = exc.status if isinstance(exc, AppError) else 422
        # The number as typed stays in the form; the switch shows the form afresh.
        return pages.page(request, ctx, "start.html", status=status, here="/my/",
                          error=_problem(request, exc), invalid=_fields(exc),
                          phone=phone, country=country)  # fmt: skip
    outbox.kick()
    # To a page of its own: reloading it, or going back to it, sends no second SMS.
    response = pages.redirect("/my/code")
    pages.set_pending(request, response, sent.verification_id)
    return response


@router.get("/code", response_class=HTMLResponse)
async def my_code_page(request: Request, ctx: CtxDep, tx: TxDep) -> Response:
    """The code form of the self-service verification just sent (after the redirect)."""
    return await _code_page(request, ctx, tx, correction=False)


async def _code_page(
    request: Request,
    ctx: CtxDep,
    tx: TxDep,
    *,
    correction: bool,
    exc: AppError | ValidationError | None = None,
    verification_id: str = "",
) -> Response:
    """The code form of the verification this browser was just sent: the first number's
    (Back: the start page) or a correction's (Back: the records, the session goes on).
    None (or gone): the start page. With ``exc``, the answer to a refused code: the same
    form again, saying why, with the line that says where the code went."""
    pending = request.cookies.get(pages.PENDING_COOKIE, "")
    known = _VERIFICATION_ID.fullmatch(pending) is not None
    sent = await sessions.sent(tx, ctx, pending) if known else None
    here: str | None = "/my/correction/code" if correction else "/my/code"
    action, back = ("/my/correction", "/my/records") if correction else ("/my/session", "/my/")
    if exc is None:
        if sent is None:
            return pages.redirect("/my/")
        if sent.expires_at <= ctx.clock.now():
            # Its form can do nothing more: said now, not once a code was typed into it.
            if correction:
                return _leave_code(ctx, request, "/my/records", "correction_code_gone")
            return _leave_code(ctx, request, "/my/", "start_again_expired", ending=True)
        left = _wrong_code_left(ctx, request)
        if left is None:
            return pages.page(request, ctx, "code.html", sent=sent, action=action, back=back)
        error = PROBLEMS[pages.language(request)][states.WrongCode.slug].format(attempts_left=left)
        shown_once = pages.page(request, ctx, "code.html", sent=sent, action=action, back=back,
                                error=error, invalid=["code"])  # fmt: skip
        pages.forget_flash(request, shown_once)  # a reload shows the form without it
        return shown_once
    shown: object = sent
    if sent is None or sent.verification_id != verification_id:
        # A form of another verification (an older tab): its number is not repeated, and
        # no address shows that form again.
        shown = {"verification_id": verification_id, "phone_masked": ""}
        here = None
    status = exc.status if isinstance(exc, AppError) else 422
    return pages.page(request, ctx, "code.html", status=status, here=here,
                      error=_problem(request, exc), invalid=["code"],
                      sent=shown, action=action, back=back)  # fmt: skip


_VERIFICATION_ID = re.compile(r"ver_[A-Za-z0-9_\-]{1,36}")


def _leave_code(
    ctx: Context, request: Request, url: str, said: str, *, ending: bool = False
) -> Response:
    """Away from a code form for good (its code used, or able to do nothing more): to
    ``url``, which says ``said`` once (``ending``: after the session, see set_flash),
    the code forgotten."""
    response = pages.redirect(url)
    pages.set_flash(ctx, request, response, said, ending=ending)
    pages.forget_pending(response)
    return response


_WRONG_CODE = "wrong_code:"


def _after_wrong_code(
    ctx: Context, request: Request, exc: AppError | ValidationError, verification_id: str
) -> Response | None:
    """A wrong code with tries left, for the code this browser was sent: back to its code
    form by a redirect, which says so once. The answer is then a page of its own, so a
    reload does not send the code again (using up a try) and Back finds a page."""
    if not isinstance(exc, states.WrongCode) or not exc.extra.get("attempts_left"):
        return None
    if request.cookies.get(pages.PENDING_COOKIE) != verification_id:
        return None  # an older tab's form: answered in place (no address shows it)
    correction = request.url.path == "/my/correction"
    response = pages.redirect("/my/correction/code" if correction else "/my/code")
    left = int(exc.extra["attempts_left"])
    pages.set_flash(ctx, request, response, f"{_WRONG_CODE}{verification_id}:{left}")
    return response


def _wrong_code_left(ctx: Context, request: Request) -> int | None:
    """The tries left that a wrong code's redirect carries (see :func:`_after_wrong_code`),
    for the code this browser was sent only: never said on another code's form."""
    said = (pages.flash(ctx, request) or "").removeprefix(_WRONG_CODE)
    verification_id, _, left = said.rpartition(":")
    pending = request.cookies.get(pages.PENDING_COOKIE)
    return int(left) if verification_id == pending and left.isdigit() else None


@router.post("/session", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_session(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    verification_id: Annotated[str, Form(max_length=40)],
    code: Annotated[str, Form(max_length=20)] = "",  # missing: refused beside the field
) -> Response:
    try:
        data = SubjectCodeCheck(verification_id=verification_id, code=_typed_code(code))
        opened = await sessions.open_session(db, ctx, data=data)
    except sessions.NothingHeld:
        # To the start page, which says so once: answered in place, a reload posted the
        # used code again and showed a dead code form saying "already used".
        return _leave_code(ctx, request, "/my/", "nothing", ending=True)
    except (AppError, ValidationError) as exc:
        slug = _slug(exc)
        if slug in SIGN_IN_GONE and request.cookies.get(pages.PENDING_COOKIE) == verification_id:
            # To the start page, which says why once: answered in place, a reload posted
            # the dead code again and offered its form.
            return _leave_code(ctx, request, "/my/", SIGN_IN_GONE[slug], ending=True)
        if again := _after_wrong_code(ctx, request, exc, verification_id):
            return again
        async with db.transaction() as tx:
            return await _code_page(request, ctx, tx, correction=False, exc=exc,
                                    verification_id=verification_id)  # fmt: skip
    response = pages.redirect("/my/records")
    pages.set_session(request, response, opened.token)
    pages.forget_pending(response)
    return response


@router.get("/records", response_class=HTMLResponse)
async def my_records(request: Request, ctx: CtxDep, tx: TxDep, subject: CookieSubject) -> Response:
    if subject is None:
        return _ended(request, ctx)
    # What the last action did comes from the action's own answer (a flash keyed to the
    # session), never from the address: a link cannot claim that something was done.
    response = await _records_page(request, ctx, tx, subject, flash=pages.flash(ctx, request))
    pages.forget_flash(request, response)  # said once: a reload does not say it again
    return response


async def _records_page(
    request: Request,
    ctx: CtxDep,
    tx: TxDep,
    subject: Subject,
    *,
    flash: str | None = None,
    status: int = 200,
    **values: Any,
) -> Response:
    """The records page, with what the last action did (``flash``) or, from the
    correction's form, why the new number was refused."""
    held = await service.held(tx, ctx, subject=subject)
    records = await service.disclosures(tx, ctx, subject=subject)
    said = flash if flash in FLASHES else None
    # What is in effect now, and the actions that change it: a stop once in effect is not
    # offered again (the page says where it is undone), provision's stop turns to resume.
    now = {
        "messages": await service.receives_coupon_messages(tx, subject=subject),
        "usage": any(held_for.purpose == Purpose.COUPON_USAGE for held_for in held.purposes),
    }
    offered = [
        *(["withdraw-delivery"] if now["messages"] else []),
        *(["stop-usage"] if now["usage"] else []),
        "resume-provision" if held.provision_stopped_at else "stop-provision",
    ]
    return pages.page(request, ctx, "records.html", status=status, here="/my/records",
                      held=held, records=records.records, flash=said, now=now, offered=offered,
                      flash_refused=FLASHES.get(said or "", False), **values)  # fmt: skip


@router.post("/actions/{action}", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_action(
    action: Literal["withdraw-delivery", "stop-usage", "stop-provision", "resume-provision"],
    request: Request,
    ctx: CtxDep,
    tx: TxDep,
    ip: ClientIp,
    subject: CookieSubject,
) -> Response:
    if subject is None:
        return _ended(request, ctx)
    done = await service.act(tx, ctx, subject=subject, kind=ACTIONS[action], ip=ip)
    response = pages.redirect("/my/records")
    pages.set_flash(ctx, request, response, f"done_{action}" if done.changed else "unchanged")
    return response


@router.get("/erase", response_class=HTMLResponse)
async def my_erase_confirm(request: Request, ctx: CtxDep, subject: CookieSubject) -> Response:
    if subject is None:
        return _ended(request, ctx)
    return pages.page(request, ctx, "erase.html")


@router.post("/erase", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_erase(
    request: Request,
    ctx: CtxDep,
    tx: TxDep,
    db: DbDep,
    subject: CookieSubject,
    background: BackgroundTasks,
    confirm: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    if subject is None:
        return _ended(request, ctx)
    if confirm != "yes":
        error = TEXTS[pages.language(request)]["erase_unchecked"]
        return pages.page(request, ctx, "erase.html", status=422, here="/my/erase",
                          error=error, invalid=["confirm"])  # fmt: skip
    receipt = await erasure.erase_own(tx, ctx, subject=subject)
    background.add_task(db.checkpoint)  # once committed: empty SQLite's write-ahead log
    # The receipt at an address of its own: a reload, or the language switch, shows it
    # again rather than posting the erasure again (which the ended session refuses).
    response = pages.redirect("/my/receipt")
    pages.set_receipt(ctx, request, response, receipt.id)
    pages.clear_session(response)
    return response


@router.get("/receipt", response_class=HTMLResponse)
async def my_receipt(request: Request, ctx: CtxDep, tx: TxDep) -> Response:
    """The receipt of the erasure this browser made, for 15 minutes after it (then, or
    without one: the start page)."""
    found = pages.receipt_id(ctx, request)
    receipt = None if found is None else await register.erasure_receipt(tx, found)
    if receipt is None or ctx.clock.now() - receipt.erased_at > RECEIPT_SHOWN:
        return pages.redirect("/my/")
    erased, kept = pages.receipt_lines(receipt, pages.language(request))
    words = RECEIPT[pages.language(request)]
    return pages.page(request, ctx, "receipt.html", receipt=receipt, words=words,
                      erased=erased, kept=kept)  # fmt: skip


# How long after the erasure its browser shows the receipt again: time to read it, switch
# its language and note its ID. The next user of a shared browser who starts to sign in
# forgets it sooner (pages.forget_receipt).
RECEIPT_SHOWN = dt.timedelta(minutes=15)


@router.post("/correction/code", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_correction_code(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    ip: ClientIp,
    outbox: OutboxDep,
    subject: CookieSubjectApart,
    country: Annotated[Literal["JP", "KR"], Form()],
    phone: Annotated[str, Form(max_length=100)] = "",  # missing: refused as empty
) -> Response:
    if subject is None:
        return _ended(request, ctx)
    try:
        data = SubjectStart(phone=phone, country=country, locale=pages.language(request))
        sent = await sessions.start_correction_apart(db, ctx, subject=subject, data=data, ip=ip)
    except (AppError, ValidationError) as exc:
        # The records again, the refusal beside the new number's field, the number as
        # typed: the person is still signed in and tries again there.
        status = exc.status if isinstance(exc, AppError) else 422
        invalid = _fields(exc) or ["phone"]
        async with db.transaction() as tx:
            return await _records_page(request, ctx, tx, subject, status=status,
                                       error=_problem(request, exc), invalid=invalid,
                                       phone=phone, country=country)  # fmt: skip
    outbox.kick()
    # As the first code: a page of its own, so a reload sends no second SMS.
    response = pages.redirect("/my/correction/code")
    pages.set_pending(request, response, sent.verification_id)
    return response


@router.get("/correction/code", response_class=HTMLResponse)
async def my_correction_code_page(
    request: Request, ctx: CtxDep, tx: TxDep, subject: CookieSubject
) -> Response:
    """The code form of the new number (after the redirect)."""
    if subject is None:
        return _ended(request, ctx)
    return await _code_page(request, ctx, tx, correction=True)


@router.post("/correction", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_correction(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    subject: CookieSubjectApart,
    verification_id: Annotated[str, Form(max_length=40)],
    code: Annotated[str, Form(max_length=20)] = "",  # missing: refused beside the field
) -> Response:
    if subject is None:
        return _ended(request, ctx)
    try:
        data = SubjectCodeCheck(verification_id=verification_id, code=_typed_code(code))
        await erasure.correct(db, ctx, subject=subject, data=data)
    except (AppError, ValidationError) as exc:
        slug = _slug(exc)
        if slug == erasure.NumberTaken.slug or slug in CODE_GONE:
            # The code is spent (or can no longer be): its form could only refuse it
            # again. The records say why; the correction starts again there.
            taken = slug == erasure.NumberTaken.slug
            said = "correction_taken" if taken else "correction_code_gone"
            return _leave_code(ctx, request, "/my/records", said)
        if again := _after_wrong_code(ctx, request, exc, verification_id):
            return again
        async with db.transaction() as tx:
            return await _code_page(request, ctx, tx, correction=True, exc=exc,
                                    verification_id=verification_id)  # fmt: skip
    return _leave_code(ctx, request, "/my/records", "done_corrected")


@router.post("/logout", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_logout(request: Request, ctx: CtxDep, tx: TxDep, subject: CookieSubject) -> Response:
    if subject is not None:
        await sessions.end(tx, ctx, subject=subject)
    response = pages.redirect("/my/")
    pages.clear_session(response)
    pages.set_flash(ctx, request, response, "signed_out", ending=True)  # said on the start page
    return response


@router.get("/{elsewhere:path}", include_in_schema=False)
async def my_elsewhere(elsewhere: str) -> RedirectResponse:
    """Any other /my/ address opened in the browser: a form's target reloaded or typed
    again in the address bar (``/my/code`` after the code was sent), a tab the phone
    reloaded, a mistyped link. The start page, in the person's language, rather than a
    JSON 405 or 404 (``elsewhere`` is not used)."""
    return pages.redirect("/my/")
