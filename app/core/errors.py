"""One error base class, rendered everywhere as RFC 9457 problem details."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping, Sequence
from socket import gaierror
from typing import Any, ClassVar

import asyncpg
import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from app.core.logging import redact

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://smsreg.dev/problems/"
# Where the OpenAPI document keeps the Problem schema (app/core/openapi.py puts it there).
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
log = logging.getLogger("smsreg.errors")


class FieldProblem(BaseModel):
    """One field at fault: where it is, its name and what is wrong."""

    location: str = Field(description="body, query, path or header")
    field: str = Field(description="dotted name of the field, e.g. `phone`")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details, extended with the fields at fault and, for some types,
    members of their own (each absent where its type does not send it)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None
    # The members below are sent only by the types named in each description, never as
    # null: SkipJsonSchema keeps the None default out of the document, so a generated
    # client reads each as optional and of one type.
    attempts_left: int | SkipJsonSchema[None] = Field(
        default=None, description="`invalid-code`, `attempts-exhausted`: checks left (0: none)"
    )
    retry_after: int | SkipJsonSchema[None] = Field(
        default=None,
        description="`rate-limited`, `login-throttled`: seconds to wait, as in `Retry-After`",
    )
    limit: str | int | SkipJsonSchema[None] = Field(
        default=None,
        description="`rate-limited`, `login-throttled`: the name of the limit that refused "
        "(docs/api.md, send limits); `coupon-already-redeemed`: the redemptions allowed per "
        "number",
    )
    redeemed: int | SkipJsonSchema[None] = Field(
        default=None,
        description="`coupon-already-redeemed`: the redemptions this number already made",
    )
    redemption_id: str | SkipJsonSchema[None] = Field(
        default=None,
        description="`verification-already-used`: the redemption the verification backs",
    )
    subject_ids: list[str] | SkipJsonSchema[None] = Field(
        default=None,
        description="`disclosure-provision-stopped`, `disclosure-consent-missing`, "
        "`disclosure-subject-gone`: the subjects at fault",
    )


class AppError(Exception):
    """A business error with its HTTP status; subclasses live beside their services."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    # Commit the transaction before raising: for refusals that must still be recorded.
    commit: ClassVar[bool] = False
    # The headers every answer of this error carries, by name, with what they say: the
    # OpenAPI document declares them on each operation that answers it.
    answer_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldProblem] = (),
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        """The problem document for this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [error.model_dump() for error in self.errors]
        body.update(self.extra)
        return body

    @classmethod
    def openapi(cls) -> dict[str, Any]:
        """An entry for a route's ``responses=`` describing this error."""
        return problem_answer(cls.described(), headers=header_entries(cls.answer_headers))

    @classmethod
    def described(cls) -> str:
        """How the OpenAPI document names this problem: its title, then its type's slug."""
        return f"{cls.title} (`{cls.slug}`)"


# A header's value in the document: Retry-After is a number of seconds (RFC 9110 §10.2.3;
# the service never sends the date form); any other header is a plain string.
_HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    "Retry-After": {"type": "string", "pattern": "^[0-9]+$"},
    "Idempotent-Replayed": {"type": "string", "enum": ["true"]},
}


def header_entries(headers: Mapping[str, str], *, required: bool = True) -> dict[str, Any]:
    """OpenAPI header objects for headers an answer carries, by name and description."""
    return {
        name: {
            "description": description,
            "required": required,
            "schema": _HEADER_SCHEMAS.get(name, {"type": "string"}),
        }
        for name, description in headers.items()
    }


def problem_answer(description: str, *, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response that is a problem document, described so."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


# How a problem's entry names its type: "... (`slug`)", as AppError.described() writes it.
NAMED_TYPE = re.compile(r"\(`([a-z0-9-]+)`\)")


def named_types(answer: Mapping[str, Any]) -> list[str]:
    """The problem types an OpenAPI response names, in order."""
    return NAMED_TYPE.findall(str(answer.get("description", "")))


def merge_answers(first: Mapping[str, Any], then: Mapping[str, Any]) -> dict[str, Any]:
    """One status's entry for the causes of two entries: both described, one after the
    other; a header is required only where every cause sends it."""
    described = str(then["description"])
    first_word = described.split(maxsplit=1)[0] if described else ""
    if not (len(first_word) > 1 and first_word.isupper()):  # "TOTP is ..." stays as it is
        described = described[:1].lower() + described[1:]  # "The code" reads on: "the code"
    merged: dict[str, Any] = {
        **first,
        "description": f"{first['description']}; or {described}",
    }
    headers: dict[str, Any] = {}
    mine, theirs = first.get("headers", {}), then.get("headers", {})
    for name in {**mine, **theirs}:
        entry = dict(mine.get(name) or theirs[name])
        both = name in mine and name in theirs
        entry["required"] = (
            both and mine[name].get("required", False) and theirs[name].get("required", False)
        )
        if both and mine[name]["description"] != theirs[name]["description"]:
            entry["description"] = f"{mine[name]['description']}; {theirs[name]['description']}"
        headers[name] = entry
    if headers:
        merged["headers"] = dict(sorted(headers.items()))
    return merged


def problems(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """Entries for a route's ``responses=``: every problem it answers, by status. A status
    with several causes names each (a client branches on the type, not on the status)."""
    answers: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        known = answers.get(error.status)
        answers[error.status] = (
            error.openapi() if known is None else merge_answers(known, error.openapi())
        )
    return answers


class InvalidInput(AppError):
    status = 422
    slug = "invalid-input"
    title = "The request has invalid fields"

    @classmethod
    def field(cls, name: str, detail: str, *, location: str = "body") -> InvalidInput:
        """An invalid-input error naming one field."""
        return cls(
            f"{name}: {detail}",
            errors=[FieldProblem(location=location, field=name, detail=detail)],
        )


class MalformedBody(AppError):
    status = 400
    slug = "malformed-body"
    title = "The body could not be read as JSON"

    @classmethod
    def body(cls, detail: str) -> MalformedBody:
        """The body at fault, and why."""
        return cls(
            f"body: {detail}", errors=[FieldProblem(location="body", field="body", detail=detail)]
        )


class UnreadableForm(MalformedBody):
    title = "The form could not be read"


class UnsupportedMediaType(AppError):
    status = 415
    slug = "unsupported-media-type"
    title = "The body is not of a media type this operation reads"


CHALLENGE = 'Bearer realm="smsreg"'


class Unauthenticated(AppError):
    status = 401
    slug = "unauthenticated"
    title = "Missing or invalid credentials"

    answer_headers = {"WWW-Authenticate": f"`{CHALLENGE}`: send a bearer token"}

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        # RFC 9110 §15.5.2: a 401 names how to authenticate. Every credential the API
        # takes is a bearer token (an API key, a staff or a subject session).
        self.headers.setdefault("WWW-Authenticate", CHALLENGE)


class Forbidden(AppError):
    status = 403
    slug = "forbidden"
    title = "Not allowed for these credentials"


class NotFound(AppError):
    status = 404
    slug = "not-found"
    title = "Not found"


class PayloadTooLarge(AppError):
    status = 413
    slug = "payload-too-large"
    title = "The request body is too large"


class MethodNotAllowed(AppError):
    """The framework's 405, as a page route answers it (an API route's is problem
    details, with the same type)."""

    status = 405
    slug = "method-not-allowed"
    title = "This method is not allowed here"


class RateLimited(AppError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"
    answer_headers = {"Retry-After": "seconds until the limit allows another try"}

    def __init__(self, detail: str, *, retry_after: int, limit: str) -> None:
        retry_after = max(1, retry_after)
        super().__init__(
            detail, headers={"Retry-After": str(retry_after)}, retry_after=retry_after, limit=limit
        )


class DatabaseUnavailable(AppError):
    status = 503
    slug = "database-unavailable"
    title = "The database does not answer: try again shortly (nothing was changed)"
    answer_headers = {"Retry-After": "`5`: seconds before trying again"}

    def __init__(self) -> None:
        super().__init__("the service could not reach its database", headers={"Retry-After": "5"})


# SQLite's result codes for a database it cannot use now: locked past the wait, full,
# unreadable or unopenable (sqlite3's constants).
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 13, 14})  # BUSY, LOCKED, IOERR, FULL, CANTOPEN
# PostgreSQL's SQLSTATEs for a server that will not take the connection or the work now:
# class 08 (connection exception), 53 (insufficient resources: disk, memory, too many
# connections), 57 (operator intervention: shutting down, a statement timeout), a lock
# not granted in time (55P03), a deadlock or serialisation failure (40P01, 40001), a
# read-only server after a failover (25006), a database that does not exist (3D000).
_POSTGRES_UNAVAILABLE = ("08", "53", "57", "55P03", "40P01", "40001", "25006", "3D000")
# What asyncpg says, with no SQLSTATE, of a connection the server closed (a restart, a
# terminated backend), and PostgreSQL of a database closed to connections (55000 is
# also a bug's code, so only with that message).
_LOST = re.compile(r"connection (?:is|was) closed|not currently accepting connections")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the database cannot be reached or take
    the work now, rather than that a statement is wrong: a refused or lost connection, a
    host that does not resolve, a pool that had none to give in time, a server shutting
    down, out of resources or read-only, a lock or a statement that timed out, a
    deadlock, a database that is gone, SQLite locked, full or unreadable."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        found = pending.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        # sqlalchemy.exc.TimeoutError: the pool had no connection to give in time.
        if isinstance(found, ConnectionError | TimeoutError | sa_exc.TimeoutError | gaierror):
            return True
        state = getattr(found, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_POSTGRES_UNAVAILABLE):
            return True
        if state == "55000" and _LOST.search(str(found)):
            return True
        code = getattr(found, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_UNAVAILABLE:
            return True
        if isinstance(found, OSError) and str(found).startswith("Multiple exceptions"):
            return True  # asyncpg: every address of the server refused the connection
        if isinstance(found, asyncpg.InterfaceError) and _LOST.search(str(found)):
            return True  # no SQLSTATE: the server ended the session (a restart, a kill)
        if isinstance(found, psycopg.OperationalError) and found.sqlstate is None:
            return True  # the tools' driver: no SQLSTATE when it could not connect at all
        pending += [getattr(found, "orig", None), found.__cause__, found.__context__]
    return False


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """Serialise a problem document with the right media type."""
    return Response(
        orjson.dumps(body),
        status_code=body["status"],
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def validation_problems(exc: RequestValidationError) -> list[FieldProblem]:
    """The fields at fault in a validation error, as problem entries. A key the caller
    made up (an extra one) is named only when it reads as a field name: a problem
    document never repeats a phone number or a kilobyte of markup sent as a key."""
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc else "body"
        # Named up to the first key that is not to be named back.
        cut = next((i for i in range(1, len(loc)) if not _named_back(loc[i])), len(loc))
        name = ".".join(loc[1:cut]) or location
        detail = str(error["msg"])
        if error.get("type") == "value_error":  # our validators' own words, not pydantic's
            detail = detail.removeprefix("Value error, ")
        problems.append(FieldProblem(location=location, field=name, detail=detail))
    return problems


def is_json_media_type(content_type: str) -> bool:
    """Whether a Content-Type is one FastAPI reads as JSON (``application/json``, ``+json``)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


# How app.core.http.StrictJsonRequest starts the JSONDecodeError of a key named twice.
DUPLICATE_KEY = "duplicate key: "
# A key named back in a problem as its field (a list index too); any other is not echoed.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}|\d{1,6}")


def _named_back(key: str) -> bool:
    if key == "[key]":  # pydantic's mark for a mapping's key (messages.fr.[key])
        return True
    return _FIELD_NAME.fullmatch(key) is not None and redact(key) == key


def _input_error(request: Request, exc: RequestValidationError) -> AppError:
    errors = exc.errors()
    for error in errors:
        if error.get("type") != "json_invalid":
            continue
        reason = str((error.get("ctx") or {}).get("error", ""))
        if reason.startswith(DUPLICATE_KEY):
            key = reason.removeprefix(DUPLICATE_KEY)
            field = key if _named_back(key) else "body"
            detail = "is named twice in one object"
            return MalformedBody(
                f"{field}: {detail}",
                errors=[FieldProblem(location="body", field=field, detail=detail)],
            )
        return MalformedBody.body("is not valid JSON")
    has_body = "transfer-encoding" in request.headers or request.headers.get(
        "content-length", "0"
    ) not in ("", "0")
    if (
        has_body
        and not is_json_media_type(request.headers.get("content-type", ""))
        and any(error.get("loc", ())[:1] == ("body",) for error in errors)
    ):
        # FastAPI left a body it would not read as JSON unparsed, so the body "is not an
        # object": the media type is at fault, not a field.
        return UnsupportedMediaType(
            "Content-Type: must be application/json",
            errors=[
                FieldProblem(
                    location="header", field="Content-Type", detail="must be application/json"
                )
            ],
        )
    return invalid_input(exc)


def invalid_input(exc: RequestValidationError) -> InvalidInput:
    """The fields a validation found wrong, each named."""
    problems = validation_problems(exc)
    detail = "; ".join(f"{p.field}: {p.detail}" for p in problems)
    return InvalidInput(detail, errors=problems)


# What every authenticated route may answer before its own problems, for its OpenAPI
# `responses`: no or a bad credential (401), or one that may not do this (403).
AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: Unauthenticated.openapi(),
    403: Forbidden.openapi(),
}


# The framework's own refusals (no such route, a method the route does not take), by
# status; any other is an `http-error` (docs/api.md lists them all).
HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}
HTTP_ERROR = "http-error"
INTERNAL_ERROR = "internal-error"


class PageRoute(APIRoute):
    """A route that answers pages (the staff console, /my/): its refusals are pages too.

    The app's error handlers ask the matched route to render a refusal. By then the
    request's unit of work has ended as the refusal says: rolled back, or committed for
    one that is recorded. A route that caught the refusal itself would have returned
    normally, and its unit would have committed the writes of a refused request.
    """

    def refusal(self, request: Request, exc: AppError) -> Response:
        """The page for a refusal (an input that does not validate is an InvalidInput)."""
        raise NotImplementedError


def _page_route(request: Request) -> PageRoute | None:
    route = request.scope.get("route")
    return route if isinstance(route, PageRoute) else None


def _allowed_methods(request: Request) -> str:
    """Every method the operations at the request's path take, for ``Allow``: those of
    the routes with the path template of the first route the path matched, as the
    OpenAPI document lists them.

    FastAPI makes one route per operation, and Starlette names the methods of the first
    route whose path matched: a path with ``GET`` and ``POST`` answered ``Allow: POST``.
    A route with a parameter that the path also matches (``/v1/staff/{staff_id}`` for
    ``/v1/staff/sessions``) is another operation, whose methods are not the path's.
    ``iter_route_contexts`` is FastAPI's public way to walk the routes of included
    routers (``app.routes`` holds them unflattened since FastAPI 0.137).
    """
    template: str | None = None
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if template is None:
            match, _child = route.matches(request.scope)
            if match == Match.NONE:
                continue
            template = route.path_format
        if route.path_format == template:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, ours or the framework's, as problem details (or, on a
    :class:`PageRoute`, as its page)."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        page = _page_route(request)
        if page is not None:
            return page.refusal(request, exc)
        return problem_response(exc.to_problem(), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        page = _page_route(request)
        if page is not None:  # a form: name its fields, whatever its media type
            return page.refusal(request, invalid_input(exc))
        # Credentials are dependencies, solved before the input is validated: a caller
        # without a valid key got 401/403 already and never learns what was wrong here.
        return problem_response(_input_error(request, exc).to_problem())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        page = _page_route(request)
        if exc.status_code == 400 and page is not None:
            # A form Starlette could not read (too many fields or files, a broken
            # multipart body): the page's own refusal, not a JSON one.
            return page.refusal(request, UnreadableForm.body("could not be read"))
        if exc.status_code == 413 and page is not None:  # a streamed form over the cap
            return page.refusal(request, PayloadTooLarge(str(exc.detail)))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        if exc.status_code == 405 and page is not None:  # a page asked with another method
            refused = page.refusal(request, MethodNotAllowed(str(exc.detail)))
            refused.headers.update(headers)
            return refused
        if exc.status_code == 400:
            # FastAPI's answer to a body json cannot parse at all (nested too deeply,
            # undecodable bytes): the same problem as malformed JSON.
            return problem_response(MalformedBody.body("could not be parsed").to_problem())
        slug = HTTP_SLUGS.get(exc.status_code, HTTP_ERROR)
        body = {
            "type": PROBLEM_BASE + slug,
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
        }
        return problem_response(body, headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        # Reached only past the request observer (app.core.observe), which answers an
        # HTTP request's unexpected error itself.
        return internal_error(exc)


def internal_error(exc: BaseException) -> Response:
    """The answer to an unexpected error, logged with its type and frames; its message may
    hold user data, so neither the log nor the answer repeats it. A database that cannot
    be reached is no bug: ``503 database-unavailable``."""
    if database_unavailable(exc):
        log.warning("database unavailable", extra={"error_type": type(exc).__name__})
        unavailable = DatabaseUnavailable()
        return problem_response(unavailable.to_problem(), unavailable.headers)
    # Where it happened, frame by frame, without the exception's message: a driver's
    # message can quote a row's values (PostgreSQL's "DETAIL: Key (...)=(...)").
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled error", extra={"error_type": type(exc).__name__, "stack": stack})
    body = {
        "type": PROBLEM_BASE + INTERNAL_ERROR,
        "title": "Internal error",
        "status": 500,
        "detail": "The request could not be completed; nothing was changed.",
    }
    return problem_response(body)
