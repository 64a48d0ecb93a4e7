"""Who a service client is: its bearer API key, checked in the request's own transaction.

Each alias names what a route allows (``VerificationsWrite``). The key is looked up in
the database on every request, so a revoked key stops working at once; a key without
the route's scope is refused with 403. Dependencies are solved before the body is
validated, so a caller without a valid key learns nothing about its input.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials

from app.clients import service
from app.clients.scopes import Scope
from app.clients.service import Client
from app.core.deps import CtxDep, TxDep
from app.core.errors import Forbidden, Unauthenticated
from app.core.http import OneBearer

bearer = OneBearer(
    scheme_name="HTTPBearer", description="an API key (`smsreg_sk_...`)", auto_error=False
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class ApiKeyScope:
    """The dependency for routes that need one scope: the authenticated client."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, credentials: Credentials, tx: TxDep, ctx: CtxDep) -> Client:
        if credentials is None:
            raise Unauthenticated("send 'Authorization: Bearer <API key>'")
        client = await service.authenticate(tx, ctx, token=credentials.credentials)
        if self.scope.value not in client.scopes:
            raise Forbidden(f"this API key lacks the '{self.scope.value}' scope")
        return client


VerificationsWrite = Annotated[Client, Depends(ApiKeyScope(Scope.VERIFICATIONS_WRITE))]
ConsentsWrite = Annotated[Client, Depends(ApiKeyScope(Scope.CONSENTS_WRITE))]
DeliveriesWrite = Annotated[Client, Depends(ApiKeyScope(Scope.DELIVERIES_WRITE))]
CouponsWrite = Annotated[Client, Depends(ApiKeyScope(Scope.COUPONS_WRITE))]
