"""HTTP plumbing: the real client address behind trusted proxies, a body-size cap, and a
cheaper way to solve simple routes' parameters."""

from __future__ import annotations

import inspect
import ipaddress
import json
import socket
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import params
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLarge, problem_response

# For answers that carry personal data or a secret: no browser or proxy keeps a copy.
NO_STORE = {"Cache-Control": "no-store"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy.

    X-Forwarded-For is read right to left, skipping trusted proxies; the first
    address not ours is the client. A client cannot spoof it by sending its own
    header, because only hops we trust are skipped.
    """
    if peer is None:
        return "unknown"
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    """Whether an address is inside one of the trusted networks."""
    ip = _parse(address)
    return ip is not None and any(ip in network for network in trusted)


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Every request parses its peer and a hop or two. The C parser first (~0.5 us
    # against ~1.8 us for ipaddress's own, and no cache needed): it accepts only plain
    # addresses, which ipaddress reads the same. Whatever it refuses (a zone id, junk)
    # gets ipaddress's own verdict.
    try:
        if ":" in address:
            return ipaddress.IPv6Address(_packed_int(socket.AF_INET6, address))
        return ipaddress.IPv4Address(_packed_int(socket.AF_INET, address))
    except (OSError, ValueError):
        pass
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _packed_int(family: int, address: str) -> int:
    return int.from_bytes(socket.inet_pton(family, address), "big")


class BodyLimitMiddleware:
    """Refuse bodies over a size with 413 before any handler reads them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
        response = problem_response(error.to_problem())
        await response(scope, receive, send)


class _TooLarge(HTTPException):
    """Raised from receive(); an HTTPException so FastAPI's body parser lets it through."""

    def __init__(self) -> None:
        super().__init__(413, "The request body is too large")


Solver = Callable[[Request], Awaitable[dict[str, Any] | None]]
# FastAPI (0.12x+) builds an included route's handler with this set to the inclusion;
# older versions copy the route instead, and have no such variable.
_INCLUDED_ROUTE: Any = getattr(fastapi_routing, "_effective_route_context_var", None)


class LeanRoute(APIRoute):
    """An APIRoute that solves a well-formed request to a simple route directly.

    FastAPI's generic handler (dependency graph, parameter models, forms, telemetry
    hooks) cost ~50-70 us a request on our hot routes, more than their SQL. For a
    route whose parameters are only path and header values, one JSON body model, the
    Request, and dependencies that take nothing but the Request, and whose endpoint
    answers a Response, the values are validated here by the very pydantic fields
    FastAPI would use, and the dependencies are called in the same order (first).
    Whatever does not validate, or is shaped otherwise (another content type, an
    override, telemetry on), goes to FastAPI's own handler, which answers it exactly
    as before: so answers are unchanged, only cheaper. The OpenAPI document is too.
    Such dependencies must be safe to run twice: a request that then fails validation
    is handed to FastAPI, which runs them again (ours only read a header).
    """

    def get_route_handler(self) -> Callable[[Request], typing.Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        # The same route description FastAPI's handler is built from: for a route in an
        # included router, the inclusion's (its dependencies and overrides included).
        route: Any = self
        included = _INCLUDED_ROUTE.get() if _INCLUDED_ROUTE is not None else None
        if included is not None and getattr(included, "original_route", None) is self:
            route = included
        solve = _lean_solver(route)
        if solve is None:
            return standard
        endpoint = route.dependant.call
        overrides = route.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if "fastapi.telemetry" not in request.scope and not (
                overrides is not None and getattr(overrides, "dependency_overrides", None)
            ):
                values = await solve(request)
                if values is not None:
                    response: Response = await endpoint(**values)
                    return response
            return await standard(request)

        return handler


def _lean_solver(route: Any) -> Solver | None:
    dependant = route.dependant
    endpoint = dependant.call
    if (
        dependant.query_params
        or dependant.cookie_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or route._embed_body_fields
        or len(dependant.body_params) > 1
        or not inspect.iscoroutinefunction(endpoint)
    ):
        return None
    try:
        answers = typing.get_type_hints(endpoint).get("return")
    except Exception:  # unresolvable annotations: leave the route to FastAPI
        return None
    if not (isinstance(answers, type) and issubclass(answers, Response)):
        return None
    dependencies: list[tuple[str, Callable[..., Awaitable[Any]], str]] = []
    for sub in dependant.dependencies:
        call = sub.call
        shape = (sub.path_params, sub.query_params, sub.header_params, sub.cookie_params)
        if (
            any(shape)
            or sub.body_params
            or sub.dependencies
            or call is None
            or sub.name is None
            or sub.request_param_name is None
            or not (
                inspect.iscoroutinefunction(call)
                or inspect.iscoroutinefunction(type(call).__call__)
            )
        ):
            return None
        dependencies.append((sub.name, call, sub.request_param_name))
    fields = []
    for field in [*dependant.path_params, *dependant.header_params]:
        info = field.field_info
        if info.validation_alias not in (None, field.alias) or not isinstance(
            info, params.Path | params.Header
        ):
            return None
        if isinstance(info, params.Header) and (
            info.is_required() or info.validate_default or field.default is not None
        ):
            return None
        fields.append((field, isinstance(info, params.Path)))
    body = route.body_field if dependant.body_params else None
    request_name = dependant.request_param_name

    async def solve(request: Request) -> dict[str, Any] | None:
        # In FastAPI's order: the body is parsed first (bad JSON is answered before
        # anything else), then dependencies run, then parameters and body validate.
        document = None
        if body is not None:
            # Exactly the JSON FastAPI parses (the same json.loads); any other content
            # type, an empty body or bad JSON is left to it.
            if request.headers.get("content-type") != "application/json":
                return None
            raw_body = await request.body()
            try:
                document = json.loads(raw_body) if raw_body else None
            except ValueError:
                return None
            if document is None:
                return None
        values: dict[str, Any] = {}
        for name, call, request_param in dependencies:
            values[name] = await call(**{request_param: request})
        for field, in_path in fields:
            if in_path:
                raw = request.path_params.get(field.alias)
                loc: tuple[str, ...] = ("path", field.alias)
            else:
                raw = request.headers.get(field.alias)
                if raw is None:  # optional header, default None
                    values[field.name] = None
                    continue
                loc = ("header", field.alias)
            value, errors = field.validate(raw, values, loc=loc)
            if errors:
                return None
            values[field.name] = value
        if body is not None:
            value, errors = body.validate(document, values, loc=("body",))
            if errors:
                return None
            values[body.name] = value
        if request_name is not None:
            values[request_name] = request
        return values

    return solve
