"""What every route shares: one runtime object and the client address.

Kept to a single dependency on purpose: FastAPI resolves each dependency on every
request, and on the hot paths that cost more than the SQL (measured with cProfile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from app.core.context import Context
from app.core.db import Database
from app.core.http import client_ip

if TYPE_CHECKING:
    from app.sms.outbox import OutboxWorker


@dataclass(frozen=True)
class Runtime:
    """The process-wide context, database and outbox worker."""

    ctx: Context
    db: Database
    outbox: OutboxWorker


def runtime_of(request: Request) -> Runtime:
    """The runtime of the app serving this request."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    """Dependency form of :func:`runtime_of`."""
    return runtime_of(request)


def request_ip(request: Request) -> str:
    """The caller's address, honouring X-Forwarded-For only from trusted proxies."""
    settings = runtime_of(request).ctx.settings
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), settings.trusted_networks)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
