"""What every /my/ route shares: its route class (a refusal answers as a page in the
person's language), the forms' CSRF check, the session cookie's subject, and a refusal
said in the person's words."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.core.context import Context
from app.core.deps import CtxDep, DbDep, TxDep
from app.core.error_handlers import PageRoute
from app.core.errors import AppError, InvalidInput, Unauthenticated
from app.core.http import refuse_repeated_fields
from app.core.phone import ValidElsewhere
from app.my import pages
from app.my.texts import PROBLEMS, TEXTS
from app.subject import sessions
from app.subject.schemas import SubjectCodeCheck
from app.subject.sessions import Subject
from app.verification import states


def refusal(request: Request, exc: AppError) -> Response:
    """A refusal as a page in the person's language (also for a body too large to be
    routed at all: app.main hands this to the body-size cap)."""
    ctx: Context = request.app.state.ctx
    if isinstance(exc, pages.CsrfRefused):  # a stale form: its own words, translated
        cross = isinstance(exc, pages.CrossOrigin)  # another site's page: never followed
        if not cross and (again := _sent_again(ctx, request)) is not None:
            return again
        # Said as the refusal it is (titled "Error:", an alert): nothing was done.
        words = TEXTS[pages.language(request)]["csrf"]
        page = pages.page(request, ctx, "message.html", status=exc.status, key="csrf", error=words)
    else:
        page = pages.page(request, ctx, "message.html", status=exc.status, key="refused",
                          error=problem_words(request, exc))  # fmt: skip
    page.headers.update(exc.headers)
    return page


def _sent_again(ctx: Context, request: Request) -> Response | None:
    """A form of our own sent a second time (a double tap, Back and send) once its first
    sending had changed the cookies its token is bound to: where the first one led, not
    "the form has expired", which read as a failure of what had in fact been done. None:
    any other refused form. Nothing is done here: each answer only leads to a page."""
    path = request.url.path
    session = pages.session_token(request)
    if path == "/my/erase" and pages.receipt_id(ctx, request) is not None:
        # The erasure's form once it was done: its receipt (which read as a failed erasure).
        return pages.redirect("/my/receipt")
    if path == "/my/session" and session and pages.made_before_session(ctx, request):
        # The right code again, the first having opened the session (whose cookie the
        # token did not name): the records, as the start page leads a signed-in person.
        return pages.redirect("/my/records")
    if path == "/my/logout" and not session and pages.shaped_like_a_token(request):
        # Sign out again, the first having ended the session and forgotten its cookie, which
        # the form's token named (so it cannot be checked now): signed out, which is so.
        response = pages.redirect("/my/")
        pages.set_flash(ctx, request, response, "signed_out", ending=True)
        return response
    return None


class MyRoute(PageRoute):
    """A /my/ route: a refusal, or a form that does not validate, answers as a page in
    the person's language, never as a JSON problem."""

    def refusal(self, request: Request, exc: AppError) -> Response:
        return refusal(request, exc)


async def form_csrf(
    request: Request, ctx: CtxDep, csrf: Annotated[str | None, Form()] = None
) -> None:
    """Every form: its CSRF field matches this browser's cookie, or 403 csrf-refused
    when it is missing or wrong, before any other field is looked at; and no field is
    given twice."""
    pages.check_csrf(ctx, request, csrf)
    await refuse_repeated_fields(request)


CSRF_CHECKED = [Depends(form_csrf)]


def refusal_slug(exc: AppError | ValidationError) -> str:
    """A refusal's problem type; the last wrong code (none left) counts as the attempts
    exhausted, since the next check of the same form can only be refused as such."""
    if not isinstance(exc, AppError):
        return ""
    if exc.slug == states.WrongCode.slug and exc.extra.get("attempts_left") == 0:
        return states.AttemptsExhausted.slug
    return exc.slug


async def cookie_subject(request: Request, tx: TxDep, ctx: CtxDep) -> Subject | None:
    """The subject of the session cookie, or None (no cookie, or an ended session)."""
    token = pages.session_token(request)
    if not token:
        return None
    try:
        return await sessions.authenticate(tx, ctx, token=token)
    except Unauthenticated:
        return None


CookieSubject = Annotated[Subject | None, Depends(cookie_subject)]


def ended(request: Request, ctx: Context) -> Response:
    """A step opened with no live session: the erasure's receipt for the browser that has
    just erased (Back from the receipt told the person to sign in again, with nothing
    left to sign in to), else the words that the session has ended."""
    if request.method == "GET" and pages.receipt_id(ctx, request) is not None:
        return pages.redirect("/my/receipt")
    if request.method == "POST":
        # An action sent after the session ended: a refusal, which says it was not done.
        words = TEXTS[pages.language(request)]["expired_action"]
        return pages.page(request, ctx, "message.html", status=401, key="expired", error=words)
    return pages.page(request, ctx, "message.html", status=401, key="expired")


async def cookie_subject_apart(request: Request, db: DbDep, ctx: CtxDep) -> Subject | None:
    """:func:`cookie_subject` checked in a short unit of its own, for the pages that run
    units of their own (a code sent or checked, then the change)."""
    token = pages.session_token(request)
    if not token:
        return None
    try:
        async with db.transaction() as tx:
            return await sessions.authenticate(tx, ctx, token=token)
    except Unauthenticated:
        return None


CookieSubjectApart = Annotated[Subject | None, Depends(cookie_subject_apart)]


def typed_code(code: str) -> str:
    """The code as typed: full-width digits (a Japanese input method's) read as ASCII, and
    spaces or dashes between its digits dropped (``123 456``, ``123-456``, ``123ー456``:
    an input method's long-vowel mark for a dash). Anything else is left for the check to
    refuse as not a code."""
    folded = unicodedata.normalize("NFKC", code).strip()
    digits = "".join(char for char in folded if not _code_separator(char))
    return digits if digits.isascii() and digits.isdigit() else folded


def _code_separator(char: str) -> bool:
    return char.isspace() or char in "\u30fc\u2212" or unicodedata.category(char) == "Pd"


def code_check(ctx: Context, verification_id: str, code: str) -> SubjectCodeCheck:
    """The code form's fields as the check takes them. Digits too few for any code (1 to
    3, which the API's schema refuses as not a code at all, and the page said "digits
    only") are refused as the check refuses a code of another length than its own: the
    code has so many digits (the service's), and no try is counted."""
    typed = typed_code(code)
    if typed.isascii() and typed.isdigit() and len(typed) < _SHORTEST_CODE:
        raise InvalidInput.field("code", f"must be {ctx.settings.code_length} digits")
    return SubjectCodeCheck(verification_id=verification_id, code=typed)


# The fewest digits any code has (app.core.config's code_length, the API's schema).
_SHORTEST_CODE = 4


def refused_fields(exc: AppError | ValidationError) -> list[str]:
    """The form fields a refusal is about (none: the refusal is not about a field)."""
    if isinstance(exc, ValidationError):
        return [str(error["loc"][0]) for error in exc.errors() if error["loc"]]
    if exc.slug == InvalidInput.slug:
        return [problem.field.split(".")[0] for problem in exc.errors]
    return []


def problem_words(request: Request, exc: AppError | ValidationError) -> str:
    """A refusal in the page's language (app.my.texts.PROBLEMS): by the fields at fault,
    or by its problem type; never the API's English detail."""
    words = PROBLEMS[pages.language(request)]
    if isinstance(exc, ValidElsewhere):  # a number of the other country: say which
        return words[f"field_phone_in_{exc.region}"]
    if isinstance(exc, AppError) and exc.slug != InvalidInput.slug:
        text = words.get(exc.slug, words["other"])
        retry_after = int(exc.extra.get("retry_after", 60))
        minutes = -(-retry_after // 60)
        hours = -(-retry_after // 3600)
        if minutes == 1:  # English has a singular: "1 minute"
            text = words.get(f"{exc.slug}_one", text)
        elif retry_after >= _IN_HOURS:  # a day's limit: "in 24 hours", not "in 1440 minutes"
            text = words.get(f"{exc.slug}_hours", text)
        return text.format(
            attempts_left=exc.extra.get("attempts_left", 0), minutes=minutes, hours=hours
        )
    if isinstance(exc, InvalidInput) and (length := _CODE_LENGTH.fullmatch(exc.detail)):
        return words["code_length"].format(digits=length.group(1))  # not counted: say so
    fields = refused_fields(exc) or ["?"]
    return " ".join(dict.fromkeys(words.get(f"field_{field}", words["other"]) for field in fields))


# From how long a wait on it is said in hours (rounded up) rather than in minutes.
_IN_HOURS = 2 * 3600

# How the code check refuses a code of another length than the one sent
# (app.verification.checking).
_CODE_LENGTH = re.compile(r"code: must be (\d+) digits")
