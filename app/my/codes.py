"""The code forms of /my/: the first number's (signing in) and a correction's new
number's, and where each goes once its code can do nothing more."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.core.context import Context
from app.core.deps import CtxDep, TxDep
from app.core.errors import AppError
from app.my import pages
from app.my.deps import problem_words
from app.my.texts import PROBLEMS
from app.subject import sessions
from app.verification import states

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


async def code_page(
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
                return leave_code(ctx, request, "/my/records", "correction_code_gone")
            return leave_code(ctx, request, "/my/", "start_again_expired", ending=True)
        if sent.verification_id != pending:
            # Its form was superseded by a newer send of the number's form (two at once:
            # the browser kept the older answer): the code on its way is the newest's.
            page = pages.page(request, ctx, "code.html", sent=sent, action=action, back=back)
            pages.set_pending(request, page, sent.verification_id)
            return page
        left = _wrong_code_left(ctx, request)
        if left is None:
            return pages.page(request, ctx, "code.html", sent=sent, action=action, back=back)
        error = PROBLEMS[pages.language(request)][states.WrongCode.slug].format(attempts_left=left)
        shown_once = pages.page(request, ctx, "code.html", sent=sent, action=action, back=back,
                                error=error, invalid=["code"])  # fmt: skip
        pages.forget_flash(request, shown_once)  # a reload shows the form without it
        return shown_once
    shown: object = sent
    newest = None
    if sent is None or sent.verification_id != verification_id:
        # A form of another verification (an older tab): its number is not repeated, and
        # no address shows that form again.
        shown = {"verification_id": verification_id, "phone_masked": ""}
        here = None
        if sent is not None and sent.expires_at > ctx.clock.now():
            newest = "/my/correction/code" if correction else "/my/code"
    status = exc.status if isinstance(exc, AppError) else 422
    # A code that can do nothing more (replaced by a newer one, used, expired, tried too
    # often, or never known: a page left open past the purge): no code typed into this
    # form can work, so it is not offered; the page says what works instead, and leads
    # to the newest code's form when this browser has it.
    slug = exc.slug if isinstance(exc, AppError) else None
    spent = slug in CODE_GONE
    superseded = slug == states.VerificationSuperseded.slug
    if spent:
        here = None  # its address would offer the dead form again
    return pages.page(request, ctx, "code.html", status=status, here=here,
                      error=problem_words(request, exc), invalid=["code"], spent=spent,
                      newest=newest if superseded else None,
                      sent=shown, action=action, back=back)  # fmt: skip


_VERIFICATION_ID = re.compile(r"ver_[A-Za-z0-9_\-]{1,36}")


def leave_code(
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


def after_wrong_code(
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
    """The tries left that a wrong code's redirect carries (see :func:`after_wrong_code`),
    for the code this browser was sent only: never said on another code's form."""
    said = (pages.flash(ctx, request) or "").removeprefix(_WRONG_CODE)
    verification_id, _, left = said.rpartition(":")
    pending = request.cookies.get(pages.PENDING_COOKIE)
    return int(left) if verification_id == pending and left.isdigit() else None
