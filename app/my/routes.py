"""/my/: enter the number, receive the code, see the records, act, erase (after a
confirmation). HTML forms only: every page works without JavaScript and runs none."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.core.context import Context
from app.core.deps import ClientIp, CtxDep, DbDep, OutboxDep, TxDep
from app.core.errors import AppError, InvalidInput, PageRoute, Unauthenticated
from app.my import pages
from app.my.texts import PROBLEMS, RECEIPT
from app.subject import erasure, service, sessions
from app.subject.schemas import RequestKind, SubjectCodeCheck, SubjectStart
from app.subject.sessions import Subject


def refusal(request: Request, exc: AppError) -> Response:
    """A refusal as a page in the person's language (also for a body too large to be
    routed at all: app.main hands this to the body-size cap)."""
    ctx: Context = request.app.state.ctx
    if isinstance(exc, pages.CsrfRefused):  # a stale form: its own words, translated
        page = pages.page(request, ctx, "message.html", status=exc.status, key="csrf")
    else:
        page = pages.page(request, ctx, "message.html", status=exc.status, key="error",
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
    when it is missing or wrong, before any other field is looked at."""
    pages.check_csrf(ctx, request, csrf)


CSRF_CHECKED = [Depends(form_csrf)]
# What the records page says was done (``?done=``): each action, and a correction.
DONE = ("withdraw-delivery", "stop-usage", "stop-provision", "resume-provision", "corrected")
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


def _problem(request: Request, exc: AppError | ValidationError) -> str:
    """A refusal in the page's language (app.my.texts.PROBLEMS): by the fields at fault,
    or by its problem type; never the API's English detail."""
    words = PROBLEMS[pages.language(request)]
    if isinstance(exc, ValidationError):
        fields = [str(error["loc"][0]) for error in exc.errors() if error["loc"]]
    elif exc.slug == InvalidInput.slug:
        fields = [problem.field.split(".")[0] for problem in exc.errors]
    else:
        text = words.get(exc.slug, words["other"])
        retry_after = int(exc.extra.get("retry_after", 60))
        minutes = -(-retry_after // 60)
        return text.format(attempts_left=exc.extra.get("attempts_left", 0), minutes=minutes)
    said = dict.fromkeys(words.get(f"field_{field}", words["other"]) for field in fields or ["?"])
    return " ".join(said)


@router.get("", include_in_schema=False)
async def my_root() -> RedirectResponse:
    """``/my`` to ``/my/``, with a Location of the path alone (see app.main)."""
    return RedirectResponse("/my/", status_code=307)


@router.get("/", response_class=HTMLResponse)
async def my_start(request: Request, ctx: CtxDep) -> Response:
    return pages.page(request, ctx, "start.html")


@router.post("/code", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_code(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    ip: ClientIp,
    outbox: OutboxDep,
    phone: Annotated[str, Form(max_length=100)],
    country: Annotated[Literal["JP", "KR"], Form()],
) -> Response:
    try:
        data = SubjectStart(phone=phone, country=country, locale=pages.language(request))
        sent = await sessions.start_apart(db, ctx, data=data, ip=ip)
    except (AppError, ValidationError) as exc:
        status = exc.status if isinstance(exc, AppError) else 422
        return pages.page(request, ctx, "start.html", status=status, error=_problem(request, exc))
    outbox.kick()
    # To a page of its own: reloading it, or going back to it, sends no second SMS.
    response = pages.redirect("/my/code")
    pages.set_pending(request, response, sent.verification_id)
    return response


@router.get("/code", response_class=HTMLResponse)
async def my_code_page(request: Request, ctx: CtxDep, tx: TxDep) -> Response:
    """The code form of the self-service verification just sent (after the redirect)."""
    return await _code_page(request, ctx, tx, action="/my/session")


async def _code_page(request: Request, ctx: CtxDep, tx: TxDep, *, action: str) -> Response:
    """The code form of the verification this browser was just sent, posting to ``action``;
    none (or gone): the start page."""
    pending = request.cookies.get(pages.PENDING_COOKIE, "")
    known = _VERIFICATION_ID.fullmatch(pending) is not None
    sent = await sessions.sent(tx, ctx, pending) if known else None
    if sent is None:
        return pages.redirect("/my/")
    return pages.page(request, ctx, "code.html", sent=sent, action=action)


_VERIFICATION_ID = re.compile(r"ver_[A-Za-z0-9_\-]{1,36}")


@router.post("/session", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_session(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    verification_id: Annotated[str, Form(max_length=40)],
    code: Annotated[str, Form(max_length=20)],
) -> Response:
    try:
        data = SubjectCodeCheck(verification_id=verification_id, code=_typed_code(code))
        opened = await sessions.open_session(db, ctx, data=data)
    except sessions.NothingHeld:
        return pages.page(request, ctx, "message.html", status=404, key="nothing")
    except (AppError, ValidationError) as exc:
        status = exc.status if isinstance(exc, AppError) else 422
        retry = {"verification_id": verification_id, "phone_masked": ""}
        return pages.page(request, ctx, "code.html", status=status,
                          error=_problem(request, exc), sent=retry)  # fmt: skip
    response = pages.redirect("/my/records")
    pages.set_session(request, response, opened.token)
    pages.forget_pending(response)
    return response


@router.get("/records", response_class=HTMLResponse)
async def my_records(request: Request, ctx: CtxDep, tx: TxDep, subject: CookieSubject) -> Response:
    if subject is None:
        return pages.page(request, ctx, "message.html", status=401, key="expired")
    held = await service.held(tx, ctx, subject=subject)
    records = await service.disclosures(tx, ctx, subject=subject)
    done = request.query_params.get("done")
    said = f"done_{done}" if done in DONE else "unchanged" if done == "unchanged" else None
    return pages.page(
        request, ctx, "records.html", held=held, records=records.records, done=said,
    )  # fmt: skip


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
        return pages.page(request, ctx, "message.html", status=401, key="expired")
    done = await service.act(tx, ctx, subject=subject, kind=ACTIONS[action], ip=ip)
    return pages.redirect("/my/records?done=" + (action if done.changed else "unchanged"))


@router.get("/erase", response_class=HTMLResponse)
async def my_erase_confirm(request: Request, ctx: CtxDep, subject: CookieSubject) -> Response:
    if subject is None:
        return pages.page(request, ctx, "message.html", status=401, key="expired")
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
        return pages.page(request, ctx, "message.html", status=401, key="expired")
    if confirm != "yes":
        return pages.page(request, ctx, "erase.html", status=422, error="confirm")
    receipt = await erasure.erase_own(tx, ctx, subject=subject)
    background.add_task(db.checkpoint)  # once committed: empty SQLite's write-ahead log
    words = RECEIPT[pages.language(request)]
    response = pages.page(request, ctx, "receipt.html", receipt=receipt, words=words)
    pages.clear_session(response)
    return response


@router.post("/correction/code", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_correction_code(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    ip: ClientIp,
    outbox: OutboxDep,
    subject: CookieSubjectApart,
    phone: Annotated[str, Form(max_length=100)],
    country: Annotated[Literal["JP", "KR"], Form()],
) -> Response:
    if subject is None:
        return pages.page(request, ctx, "message.html", status=401, key="expired")
    try:
        data = SubjectStart(phone=phone, country=country, locale=pages.language(request))
        sent = await sessions.start_apart(db, ctx, data=data, ip=ip)
    except (AppError, ValidationError) as exc:
        status = exc.status if isinstance(exc, AppError) else 422
        return pages.page(request, ctx, "message.html", status=status, key="error",
                          error=_problem(request, exc))  # fmt: skip
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
        return pages.page(request, ctx, "message.html", status=401, key="expired")
    return await _code_page(request, ctx, tx, action="/my/correction")


@router.post("/correction", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_correction(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    subject: CookieSubjectApart,
    verification_id: Annotated[str, Form(max_length=40)],
    code: Annotated[str, Form(max_length=20)],
) -> Response:
    if subject is None:
        return pages.page(request, ctx, "message.html", status=401, key="expired")
    try:
        data = SubjectCodeCheck(verification_id=verification_id, code=_typed_code(code))
        await erasure.correct(db, ctx, subject=subject, data=data)
    except (AppError, ValidationError) as exc:
        status = exc.status if isinstance(exc, AppError) else 422
        retry = {"verification_id": verification_id, "phone_masked": ""}
        return pages.page(request, ctx, "code.html", status=status, error=_problem(request, exc),
                          sent=retry, action="/my/correction")  # fmt: skip
    response = pages.redirect("/my/records?done=corrected")
    pages.forget_pending(response)
    return response


@router.post("/logout", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_logout(request: Request, ctx: CtxDep, tx: TxDep, subject: CookieSubject) -> Response:
    if subject is not None:
        await sessions.end(tx, ctx, subject=subject)
    response = pages.redirect("/my/")
    pages.clear_session(response)
    return response


@router.get("/{elsewhere:path}", include_in_schema=False)
async def my_elsewhere(elsewhere: str) -> RedirectResponse:
    """Any other /my/ address opened in the browser: a form's target reloaded or typed
    again in the address bar (``/my/code`` after the code was sent), a tab the phone
    reloaded, a mistyped link. The start page, in the person's language, rather than a
    JSON 405 or 404 (``elsewhere`` is not used)."""
    return pages.redirect("/my/")
