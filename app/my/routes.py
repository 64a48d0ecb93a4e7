"""/my/: enter the number, receive the code, see the records, act, erase (after a
confirmation). HTML forms only: every page works without JavaScript and runs none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.core.deps import ClientIp, CtxDep, DbDep, OutboxDep, TxDep
from app.core.errors import AppError
from app.my import pages
from app.my.codes import CODE_GONE, SIGN_IN_GONE, after_wrong_code, code_page, leave_code
from app.my.deps import (
    CSRF_CHECKED,
    CookieSubject,
    CookieSubjectApart,
    MyRoute,
    code_check,
    ended,
    problem_words,
    refusal_slug,
    refused_fields,
)
from app.my.texts import LANGUAGES, PROBLEMS
from app.purposes import Purpose
from app.subject import erasure, service, sessions
from app.subject.schemas import RequestKind, SubjectStart
from app.subject.sessions import Subject

router = APIRouter(prefix="/my", include_in_schema=False, route_class=MyRoute)
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


ACTIONS = {
    "withdraw-delivery": RequestKind.WITHDRAW_DELIVERY,
    "stop-usage": RequestKind.STOP_USAGE,
    "stop-provision": RequestKind.STOP_PROVISION,
    "resume-provision": RequestKind.RESUME_PROVISION,
}


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
                          error=problem_words(request, exc), invalid=refused_fields(exc),
                          phone=phone, country=country)  # fmt: skip
    outbox.kick()
    # To a page of its own: reloading it, or going back to it, sends no second SMS.
    response = pages.redirect("/my/code")
    pages.set_pending(request, response, sent.verification_id)
    return response


@router.get("/code", response_class=HTMLResponse)
async def my_code_page(request: Request, ctx: CtxDep, tx: TxDep) -> Response:
    """The code form of the self-service verification just sent (after the redirect)."""
    return await code_page(request, ctx, tx, correction=False)


@router.post("/session", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_session(
    request: Request,
    ctx: CtxDep,
    db: DbDep,
    verification_id: Annotated[str, Form(max_length=40)],
    code: Annotated[str, Form(max_length=20)] = "",  # missing: refused beside the field
) -> Response:
    try:
        data = code_check(ctx, verification_id, code)
        opened = await sessions.open_session(db, ctx, data=data)
    except sessions.NothingHeld:
        # To the start page, which says so once: answered in place, a reload posted the
        # used code again and showed a dead code form saying "already used".
        return leave_code(ctx, request, "/my/", "nothing", ending=True)
    except (AppError, ValidationError) as exc:
        slug = refusal_slug(exc)
        if slug in SIGN_IN_GONE and request.cookies.get(pages.PENDING_COOKIE) == verification_id:
            # To the start page, which says why once: answered in place, a reload posted
            # the dead code again and offered its form.
            return leave_code(ctx, request, "/my/", SIGN_IN_GONE[slug], ending=True)
        if again := after_wrong_code(ctx, request, exc, verification_id):
            return again
        async with db.transaction() as tx:
            return await code_page(request, ctx, tx, correction=False, exc=exc,
                                    verification_id=verification_id)  # fmt: skip
    response = pages.redirect("/my/records")
    pages.set_session(request, response, opened.token)
    pages.forget_pending(response)
    return response


@router.get("/records", response_class=HTMLResponse)
async def my_records(request: Request, ctx: CtxDep, tx: TxDep, subject: CookieSubject) -> Response:
    if subject is None:
        return ended(request, ctx)
    # What the last action did comes from the action's own answer (a flash keyed to the
    # session), never from the address: a link cannot claim that something was done.
    response = await _records_page(request, ctx, tx, subject, flash=pages.flash(ctx, request))
    pages.forget_flash(request, response)  # said once: a reload does not say it again
    return response


@router.get("/records.json")
async def my_records_file(
    request: Request, ctx: CtxDep, tx: TxDep, subject: CookieSubject
) -> Response:
    """What the records page shows, as a file the person keeps (APPI Art. 33: disclosure
    by electronic record): the same two documents the API's /v1/subject/data and
    /v1/subject/disclosures answer, each read recorded as theirs are."""
    if subject is None:
        return ended(request, ctx)
    held = await service.held(tx, ctx, subject=subject)
    records = await service.disclosures(tx, ctx, subject=subject)
    document = {
        "data": held.model_dump(mode="json"),
        "disclosures": records.model_dump(mode="json")["records"],
    }
    name = f"my-records-{ctx.clock.now().date().isoformat()}.json"
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2) + "\n",
        media_type="application/json",
        headers={**pages.HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


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
        return ended(request, ctx)
    done = await service.act(tx, ctx, subject=subject, kind=ACTIONS[action], ip=ip)
    response = pages.redirect("/my/records")
    pages.set_flash(ctx, request, response, f"done_{action}" if done.changed else "unchanged")
    return response


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
        return ended(request, ctx)
    try:
        data = SubjectStart(phone=phone, country=country, locale=pages.language(request))
        sent = await sessions.start_correction_apart(db, ctx, subject=subject, data=data, ip=ip)
    except (AppError, ValidationError) as exc:
        # The records again, the refusal beside the new number's field, the number as
        # typed: the person is still signed in and tries again there.
        status = exc.status if isinstance(exc, AppError) else 422
        invalid = refused_fields(exc) or ["phone"]
        async with db.transaction() as tx:
            return await _records_page(request, ctx, tx, subject, status=status,
                                       error=problem_words(request, exc), invalid=invalid,
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
        return ended(request, ctx)
    return await code_page(request, ctx, tx, correction=True)


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
        return ended(request, ctx)
    try:
        data = code_check(ctx, verification_id, code)
        await erasure.correct(db, ctx, subject=subject, data=data)
    except (AppError, ValidationError) as exc:
        slug = refusal_slug(exc)
        if slug == erasure.NumberTaken.slug or slug in CODE_GONE:
            # The code is spent (or can no longer be): its form could only refuse it
            # again. The records say why; the correction starts again there.
            taken = slug == erasure.NumberTaken.slug
            said = "correction_taken" if taken else "correction_code_gone"
            return leave_code(ctx, request, "/my/records", said)
        if again := after_wrong_code(ctx, request, exc, verification_id):
            return again
        async with db.transaction() as tx:
            return await code_page(request, ctx, tx, correction=True, exc=exc,
                                    verification_id=verification_id)  # fmt: skip
    return leave_code(ctx, request, "/my/records", "done_corrected")


@router.post("/logout", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_logout(request: Request, ctx: CtxDep, tx: TxDep, subject: CookieSubject) -> Response:
    if subject is not None:
        await sessions.end(tx, ctx, subject=subject)
    response = pages.redirect("/my/")
    pages.clear_session(request, response)
    pages.set_flash(ctx, request, response, "signed_out", ending=True)  # said on the start page
    return response


@router.get("/{elsewhere:path}", include_in_schema=False)
async def my_elsewhere(elsewhere: str) -> RedirectResponse:
    """Any other /my/ address opened in the browser: a form's target reloaded or typed
    again in the address bar (``/my/code`` after the code was sent), a tab the phone
    reloaded, a mistyped link. The start page, in the person's language, rather than a
    JSON 405 or 404 (``elsewhere`` is not used)."""
    return pages.redirect("/my/")
