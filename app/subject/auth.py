"""Who a data subject is: the bearer subject token, checked in the request's transaction.

A subject token opens the /v1/subject routes for its one subscriber until it expires; an
API key or a staff session is refused here, and a subject token everywhere else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials

from app.core.deps import CtxDep, DbDep, TxDep
from app.core.errors import Unauthenticated
from app.core.http import OneBearer
from app.subject import sessions
from app.subject.sessions import Subject

bearer = OneBearer(
    scheme_name="SubjectToken",
    description="a subject token (`smsreg_st_...`) from POST /v1/subject/sessions",
    auto_error=False,
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def current_subject(credentials: Credentials, tx: TxDep, ctx: CtxDep) -> Subject:
    """The subject of the request's bearer token (401 without a live one)."""
    if credentials is None:
        raise Unauthenticated("send 'Authorization: Bearer <subject token>'")
    return await sessions.authenticate(tx, ctx, token=credentials.credentials)


CurrentSubject = Annotated[Subject, Depends(current_subject)]


async def subject_apart(credentials: Credentials, db: DbDep, ctx: CtxDep) -> Subject:
    """The subject, checked in a short unit of its own: for the routes that run units of
    their own (a code check, then the change), checked again in the one that writes."""
    if credentials is None:
        raise Unauthenticated("send 'Authorization: Bearer <subject token>'")
    async with db.transaction() as tx:
        return await sessions.authenticate(tx, ctx, token=credentials.credentials)


SubjectApart = Annotated[Subject, Depends(subject_apart)]
