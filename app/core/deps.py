"""Dependencies every area shares: the context, the database, the client address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.core.context import Context
from app.core.db import Database
from app.core.http import client_ip


def get_context(request: Request) -> Context:
    """The process-wide context."""
    return request.app.state.ctx


def get_database(request: Request) -> Database:
    """The process-wide database."""
    return request.app.state.db


def get_client_ip(request: Request) -> str:
    """The caller's address, honouring X-Forwarded-For only from trusted proxies."""
    ctx: Context = request.app.state.ctx
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), ctx.settings.trusted_networks)


ContextDep = Annotated[Context, Depends(get_context)]
DatabaseDep = Annotated[Database, Depends(get_database)]
ClientIp = Annotated[str, Depends(get_client_ip)]
