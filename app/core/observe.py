"""Every request gets an id, one access log line and its HTTP metrics.

The id is the caller's ``X-Request-ID`` when it is a short token that holds nothing the
logs would redact (a run of digits shaped like a number or a code), else a new one, made
the same way; it is set on every log line written while the request is served, as it is
returned in the answer's ``X-Request-ID``. So a caller cannot put a phone number into
every line of a request, and the id in the logs is always the one the caller was given.
The access line names the route template (``/v1/verifications/{verification_id}/
check``), never the path itself, with the status and the duration.

An API answer (``/v1/...``) that says nothing about caching gets ``Cache-Control:
no-store``: nearly every one carries personal or audit data (a masked number, a client
address, a reason), and none is worth a cached copy in a browser or a proxy. Every
answer says ``X-Content-Type-Options: nosniff``.

A ``HEAD`` to a health check or an entry page (:data:`HEAD_PATHS`) is answered as its
``GET`` would be, with the same status and headers and no body: FastAPI routes a ``GET``
operation for ``GET`` only, and an uptime monitor that sends ``HEAD`` saw 405. Nowhere
else, since answering a ``HEAD`` runs the ``GET``: an export would be signed, streamed
and recorded, a record's read logged, for nothing delivered. The access line says
``HEAD``.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.error_handlers import internal_error
from app.core.logging import redact, request_id
from app.core.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger("smsreg.access")
_TOKEN = re.compile(rb"[A-Za-z0-9._\-]{1,64}")
_HEADER = b"x-request-id"
_CACHE_CONTROL = b"cache-control"
_NO_STORE = (_CACHE_CONTROL, b"no-store")
# Every answer is read as the type it says it is, never sniffed (a JSON answer echoing
# what a caller sent is not run as a page or a script).
_CONTENT_TYPE_OPTIONS = b"x-content-type-options"
_NOSNIFF = (_CONTENT_TYPE_OPTIONS, b"nosniff")
# Where HEAD is answered as GET: what a monitor checks, and pages whose GET does nothing.
HEAD_PATHS = frozenset({"/healthz", "/readyz", "/my/", "/console/login"})


def request_id_for(given: bytes) -> str:
    """The id of a request whose ``X-Request-ID`` was ``given`` (empty: none)."""
    if _TOKEN.fullmatch(given) and redact(rid := given.decode()) == rid:
        return rid
    while True:  # about one random id in eleven holds a run of digits a log would hide
        rid = secrets.token_hex(8)
        if redact(rid) == rid:
            return rid


class RequestObserver:
    """Pure ASGI middleware: request id, access line, metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD" and scope["path"] in HEAD_PATHS
        inner = {**scope, "method": "GET"} if head else scope
        given = next((value for name, value in scope["headers"] if name == _HEADER), b"")
        rid = request_id_for(given)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        api = scope["path"].startswith("/v1/")
        answering = False  # the answer's head has gone out

        async def send_with_id(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
                headers = [*message.get("headers", []), (_HEADER, rid.encode())]
                names = {name.lower() for name, _ in headers}
                if api and _CACHE_CONTROL not in names:
                    headers.append(_NO_STORE)
                if _CONTENT_TYPE_OPTIONS not in names:
                    headers.append(_NOSNIFF)
                message["headers"] = headers
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            try:
                await self.app(inner, receive, send_with_id)
            except ClientDisconnect:
                status = 499  # the client left while its body was read: nobody to answer
            except Exception as exc:
                if answering:
                    status = 500  # logged as what it was, though the head said otherwise
                    raise  # the answer is on its way: only the connection can end it
                # Answered here rather than by Starlette's outermost middleware: with the
                # request id and no-store like any answer, and the connection kept open.
                await internal_error(exc)(inner, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = inner.get("route")
            template = getattr(route, "path_format", None) or "unmatched"  # no convertors
            HTTP_REQUESTS.labels(template, str(status)).inc()
            HTTP_LATENCY.labels(template).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "request_id": rid,
                    },
                )
            request_id.reset(token)
