"""Who may queue a campaign: an API key with deliveries:write, checked in a transaction
of its own.

Queuing a campaign runs batch after batch, each its own short transaction
(app.delivery.service.deliver), so the request must hold no transaction while it does:
on SQLite an open one holds the process's only connection, and the first batch would
wait for it forever. The key is checked exactly as for every other client route
(app.clients.service.authenticate) in one short transaction that commits before the
endpoint runs, and still before the body is validated, so a caller without a valid key
learns nothing about its input.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.clients import service as clients
from app.clients.auth import Credentials
from app.clients.scopes import Scope
from app.clients.service import Client
from app.core.deps import CtxDep, DbDep
from app.core.errors import Forbidden, Unauthenticated


class _ScopeInOwnTransaction:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, credentials: Credentials, db: DbDep, ctx: CtxDep) -> Client:
        if credentials is None:
            raise Unauthenticated("send 'Authorization: Bearer <API key>'")
        async with db.transaction() as tx:
            client = await clients.authenticate(tx, ctx, token=credentials.credentials)
        if self.scope.value not in client.scopes:
            raise Forbidden(f"this API key lacks the '{self.scope.value}' scope")
        return client


# For the one route that queues in batches; reading a delivery uses
# app.clients.auth.DeliveriesWrite, in the request's own transaction.
DeliveriesQueue = Annotated[Client, Depends(_ScopeInOwnTransaction(Scope.DELIVERIES_WRITE))]
