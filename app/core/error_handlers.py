"""Every error, the app's own and the framework's, rendered as RFC 9457 problem details
(or, on a :class:`PageRoute`, as that route's page)."""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from app.core.errors import (
    DUPLICATE_KEY,
    PROBLEM_BASE,
    PROBLEM_MEDIA_TYPE,
    AppError,
    DatabaseUnavailable,
    FieldProblem,
    InvalidInput,
    MalformedBody,
    MethodNotAllowed,
    PayloadTooLarge,
    UnreadableForm,
    UnsupportedMediaType,
    is_json_media_type,
)
from app.core.logging import redact
from app.core.unavailable import database_unavailable, missing_privilege

log = logging.getLogger("smsreg.errors")


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
    if missing_privilege(exc):
        # Not a bug in the request: the role lacks a grant (`serve` refuses to start so;
        # one revoked since). Nothing was changed; the operator is told what to do.
        log.error(
            "database privilege missing: apply the grants (docker/postgres/grants.sql)",
            extra={"error_type": type(exc).__name__},
        )
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
