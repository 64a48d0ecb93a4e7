"""HTTP odds and ends shared by routes: a body-size cap answered as a problem, no-store."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import AppError, PayloadTooLarge, problem_response

PageRefusal = Callable[[Request, AppError], Response]

# For answers that carry personal data or a secret: no browser or proxy keeps a copy.
NO_STORE = {"Cache-Control": "no-store"}


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
