"""Permission dependencies, named for what they allow."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.deps import runtime_of
from app.core.errors import Forbidden, Unauthenticated
from app.staff import api_keys
from app.staff.api_keys import Client
from app.staff.scopes import Scope

_bearer = HTTPBearer(auto_error=False, description="an API key (`smsreg_sk_...`)")


def _require(scope: Scope) -> Any:
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Client:
        if credentials is None:
            raise Unauthenticated("send 'Authorization: Bearer <API key>'")
        runtime = runtime_of(request)
        client = await runtime.db.run(
            api_keys.authenticate, runtime.ctx, token=credentials.credentials
        )
        if scope.value not in client.scopes:
            raise Forbidden(f"this API key lacks the '{scope.value}' scope")
        return client

    return Depends(dependency)


VerificationsWrite = Annotated[Client, _require(Scope.VERIFICATIONS_WRITE)]
