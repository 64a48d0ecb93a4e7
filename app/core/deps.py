"""What routes depend on: the request's unit of work, the process context, the caller's address.

Each is an ``Annotated`` alias a route names as a parameter type::

    async def read(tx: TxDep, ctx: CtxDep, client: VerificationsWrite) -> ...

The unit of work is function-scoped: FastAPI ends it when the endpoint has returned and
its answer is built, before the answer is sent, so a client never sees an answer whose
writes are not yet committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Protocol

from fastapi import Depends, Request

from app.core.addresses import recorded
from app.core.context import Context
from app.core.db import Database
from app.core.tx import Tx


class Waker(Protocol):
    """Something to wake once work for it is committed (the outbox worker)."""

    def kick(self) -> None:
        """Wake up: there is something to do."""
        ...


def database(request: Request) -> Database:
    """The database of the app serving a request."""
    db: Database = request.app.state.db
    return db


# Dependencies are coroutines even when they do not await: FastAPI runs a plain function
# dependency in a worker thread, and each such hop costs more than a whole query.


async def get_db(request: Request) -> Database:
    """The process's database."""
    return database(request)


async def get_ctx(request: Request) -> Context:
    """The process's settings, keys and clock."""
    ctx: Context = request.app.state.ctx
    return ctx


async def unit_of_work(request: Request) -> AsyncIterator[Tx]:
    """One transaction for the request: committed after the endpoint returns, rolled back
    when it raises (a refusal that must be recorded still commits: ``AppError.commit``)."""
    async with database(request).transaction() as tx:
        yield tx


async def get_outbox(request: Request) -> Waker:
    """The outbox worker of this process (a no-op wake when a separate worker sends)."""
    outbox: Waker = request.app.state.outbox
    return outbox


async def client_ip(request: Request) -> str:
    """The caller's address. Behind trusted proxies uvicorn's proxy-header middleware has
    already put the client's address here (``SMSREG_TRUSTED_PROXIES``), as the proxy
    sent it: a value that is not an IP address (a trusted frontend's bug, or whatever it
    passed on) is ``unknown`` (app.core.addresses.recorded)."""
    return recorded(request.client.host if request.client else "")


DbDep = Annotated[Database, Depends(get_db)]
CtxDep = Annotated[Context, Depends(get_ctx)]
TxDep = Annotated[Tx, Depends(unit_of_work, scope="function")]
ClientIp = Annotated[str, Depends(client_ip)]
OutboxDep = Annotated[Waker, Depends(get_outbox)]
