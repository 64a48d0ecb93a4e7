"""HTTP plumbing: the real client address behind trusted proxies, and a body-size cap."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLarge, problem_response

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
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class BodyLimitMiddleware:
    """Refuse bodies over a size with 413 before any handler reads them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
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
