"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.core.deps import DbDep
from app.core.errors import AppError
from app.core.http import JsonRoute
from app.core.migrations import REVISIONS, behind
from app.core.openapi import NO_DATABASE

router = APIRouter(tags=["operations"], route_class=JsonRoute)
# How long readiness waits for the database.
READY_SECONDS = 3.0


class NotReady(AppError):
    status = 503
    slug = "not-ready"
    title = "The database does not answer, or is not migrated"


@router.get("/healthz", summary="The process is up", openapi_extra=NO_DATABASE)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers, migrated for this release",
    responses={503: NotReady.openapi()},
)
async def readyz(db: DbDep) -> dict[str, str]:
    try:
        # Within a load balancer's health-check timeout: a database host that takes the
        # connection and never answers held this for the pool's 60 s.
        async with asyncio.timeout(READY_SECONDS), db.transaction() as tx:
            revisions = (await tx.execute(REVISIONS)).scalars().all()
    except Exception as exc:  # any failure to reach the database means not ready
        raise NotReady() from exc
    if behind(revisions):
        raise NotReady("the database schema is behind this release: run `smsreg migrate`")
    return {"status": "ready"}
