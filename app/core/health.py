"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.deps import DbDep
from app.core.errors import AppError
from app.core.http import JsonRoute
from app.core.migrations import REVISIONS, behind
from app.core.openapi import NO_DATABASE

router = APIRouter(tags=["operations"], route_class=JsonRoute)


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
        async with db.transaction() as tx:
            revisions = (await tx.execute(REVISIONS)).scalars().all()
    except Exception as exc:  # any failure to reach the database means not ready
        raise NotReady() from exc
    if behind(revisions):
        raise NotReady("the database schema is behind this release: run `smsreg migrate`")
    return {"status": "ready"}
