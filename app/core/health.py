"""Liveness and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from app.core.deps import DbDep
from app.core.errors import AppError

router = APIRouter(tags=["operations"])


class NotReady(AppError):
    status = 503
    slug = "not-ready"
    title = "The database does not answer"


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers", responses={503: NotReady.openapi()})
async def readyz(db: DbDep) -> dict[str, str]:
    try:
        async with db.transaction() as tx:
            await tx.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means not ready
        raise NotReady() from exc
    return {"status": "ready"}
