"""HTTP odds and ends shared by routes: a body-size cap answered as a problem, no-store,
and the API's route class, whose JSON bodies may not name a key twice."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.error_handlers import problem_response
from app.core.errors import (
    DUPLICATE_KEY,
    AppError,
    FieldProblem,
    InvalidInput,
    PayloadTooLarge,
    Unauthenticated,
    UnreadableForm,
    UnsupportedMediaType,
    header_entries,
)

PageRefusal = Callable[[Request, AppError], Response]

# For answers that carry personal data or a secret: no browser or proxy keeps a copy.
NO_STORE = {"Cache-Control": "no-store"}
# On the answer to a repeated request that replays the first one (an Idempotency-Key, a
# campaign_id): nothing was done again.
REPLAYED = {"Idempotent-Replayed": "true"}


def replayed_answer(
    model: type[BaseModel], description: str, *, location: str | None = None
) -> dict[str, Any]:
    """The ``responses=`` entry of the 200 that replays a first answer, with its header
    (and the ``Location`` of what the first answer created, described by ``location``)."""
    headers = {"Idempotent-Replayed": "`true`: the first answer, replayed; nothing was done again"}
    if location is not None:
        headers["Location"] = location
    return {"model": model, "description": description, "headers": header_entries(headers)}


def created_answer(location: str) -> dict[str, Any]:
    """The ``responses=`` entry of a 201 (merged with the route's own model): its
    ``Location`` header, described by ``location``."""
    return {"headers": header_entries({"Location": location})}


def created(response: Response, path: str) -> None:
    """Say where what a request created can be read (RFC 9110, section 10.2.2): a path,
    not an absolute address, which would be built from the Host header a client sent."""
    response.headers["Location"] = path


class BodyLimitMiddleware:
    """Refuse bodies over a size with 413 before any handler reads them: a problem
    document, or under one of ``pages``' path prefixes (``/my``, ``/console``) that
    section's own page, by the function given for it."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, pages: Mapping[str, PageRefusal] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.pages = dict(pages or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths = 0
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
                lengths += 1 if value.isdigit() else 2
            elif name == b"transfer-encoding":
                chunked = True
        if lengths == 1 and not chunked:
            # One valid Content-Length within the cap: the server reads exactly that
            # many bytes, so the body cannot exceed it and needs no counting. Skipping
            # the wrappers saves every ordinary request two extra coroutine layers.
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(
            f"the body is larger than {self.max_bytes} bytes",
        )
        path: str = scope.get("path", "")
        for prefix, page in self.pages.items():
            if path == prefix or path.startswith(prefix + "/"):
                response = page(Request(scope, receive), error)
                break
        else:
            response = problem_response(error.to_problem())
        await response(scope, receive, send)


class _TooLarge(HTTPException):
    """Raised from receive(); an HTTPException so FastAPI's body parser lets it through."""

    def __init__(self) -> None:
        super().__init__(413, "The request body is too large")


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Duplicate(key)
        found[key] = value
    return found


class StrictJsonRequest(Request):
    """A request whose JSON body may not name a key twice in one object.

    JSON leaves such a body's meaning open (RFC 8259, section 4): Python keeps the last
    value, and a proxy, a firewall or the caller's own log may have read the first. So
    ``{"phone": A, "phone": B}`` is refused rather than read as either number."""

    async def json(self) -> Any:
        body = await self.body()
        try:
            return json.loads(body, object_pairs_hook=_unique, parse_constant=_not_json)
        except _Duplicate as exc:
            text = body.decode("utf-8", "replace")
            raise json.JSONDecodeError(DUPLICATE_KEY + exc.key, text, 0) from None


def _not_json(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python reads and JSON does not have
    (RFC 8259, section 6): a body holding one is malformed, not a value to validate."""
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def segment_beside(name: str, fixed: Sequence[str]) -> str:
    """A path parameter ``name`` that never captures one of the ``fixed`` segments beside
    it, for a route's path (``f"/{segment_beside('staff_id', FIXED)}/role"``).

    ``GET /v1/staff/me/totp`` beside ``DELETE /v1/staff/{staff_id}/totp``: a request with
    a method the fixed path does not take matched the parameter's route and was answered
    ``422`` for an id the caller never sent, rather than ``405`` naming what the path
    takes. A Starlette path convertor (its documented ``register_url_convertor``) keeps
    the fixed segments out of the parameter; any other value is the parameter's, validated
    as ever."""

    class Convertor(StringConvertor):
        regex = rf"(?!(?:{'|'.join(map(re.escape, fixed))})(?:/|$))[^/]+"

    register_url_convertor(name, Convertor())
    return "{" + f"{name}:{name}" + "}"


class OneBearer(HTTPBearer):
    """FastAPI's bearer scheme, refusing a request with more than one Authorization
    header (401): the scheme reads the first, and a proxy or a log may have read another."""

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        if len(request.headers.getlist("authorization")) > 1:
            raise Unauthenticated("send one Authorization header, not several")
        return await super().__call__(request)


def one_header(request: Request, name: str) -> None:
    """Refuse a request that gives header ``name`` more than once (422 naming it): the
    framework reads the first, and a proxy or a log may have read another. As a JSON
    body that names a key twice is refused (StrictJsonRequest, above)."""
    if len(request.headers.getlist(name)) > 1:
        raise InvalidInput.field(name, "given more than once", location="header")


async def refuse_repeated_fields(request: Request, *, lists: frozenset[str] = frozenset()) -> None:
    """Refuse a form that gives a field more than once (400, naming it), but for the
    fields a list is read from (``lists``): FastAPI reads the last value, so the field a
    person saw filled in need not be the one acted on. As a JSON body that names a key
    twice is refused (StrictJsonRequest, above). The form is read once: FastAPI keeps it."""
    form = await request.form()
    for name in form:
        if name not in lists and len(form.getlist(name)) > 1:
            raise UnreadableForm(
                f"{name}: given more than once",
                errors=[FieldProblem(location="body", field=name, detail="given more than once")],
            )


class JsonRoute(APIRoute):
    """The REST API's routes: FastAPI's documented custom route class, handing the
    operation a :class:`StrictJsonRequest` when it reads a body (and refusing a body sent
    with a content coding, 415)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler  # nothing to read

        async def strict_handler(request: Request) -> Response:
            encoding = request.headers.get("content-encoding")
            if encoding is not None and encoding.strip().lower() != "identity":
                # Read as it came: a compressed body would be taken for malformed JSON, and a
                # plain one under a gzip label read as though the label were not there.
                raise UnsupportedMediaType(
                    "Content-Encoding: must be absent (or identity)",
                    errors=[
                        FieldProblem(
                            location="header",
                            field="Content-Encoding",
                            detail="must be absent (or identity)",
                        )
                    ],
                )
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


async def one_value_each(request: Request) -> None:
    """Refuse a query parameter given twice (``?subscriber_id=A&subscriber_id=B``: 422
    naming it), as a JSON key, a form field or a header given twice is: FastAPI would
    answer for the last, where a proxy, a firewall or a log may have read the first. The
    operations that take query parameters depend on it (:data:`ONE_VALUE_EACH`)."""
    if not request.scope["query_string"]:
        return
    params = request.query_params  # as refuse_repeated_fields reads a form
    repeated = [name for name in params if len(params.getlist(name)) > 1]
    if repeated:
        raise InvalidInput(
            "; ".join(f"{name}: must be given once" for name in repeated),
            errors=[
                FieldProblem(location="query", field=name, detail="must be given once")
                for name in repeated
            ],
        )


ONE_VALUE_EACH = Depends(one_value_each)
