"""Permission dependencies, named for what they allow."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.deps import ContextDep, DatabaseDep
from app.core.errors import Forbidden, Unauthenticated
from app.models import ApiKey
from app.staff import api_keys
from app.staff.scopes import Scope

_bearer = HTTPBearer(auto_error=False, description="an API key (`smsreg_sk_...`)")


def _require(scope: Scope):  # type: ignore[no-untyped-def]
    async def dependency(
        ctx: ContextDep,
        db: DatabaseDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        if credentials is None:
            raise Unauthenticated("send 'Authorization: Bearer <API key>'")
        key = await db.run(api_keys.authenticate, ctx, token=credentials.credentials)
        if scope.value not in key.scopes:
            raise Forbidden(f"this API key lacks the '{scope.value}' scope")
        return key

    return Depends(dependency)


VerificationsWrite = Annotated[ApiKey, _require(Scope.VERIFICATIONS_WRITE)]
