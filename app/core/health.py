"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from app.core.db import Database
from app.core.deps import DbDep
from app.core.errors import AppError
from app.core.http import JsonRoute
from app.core.migrations import REVISIONS, UNGRANTED, behind
from app.core.openapi import NO_DATABASE
from app.core.unavailable import database_unavailable

router = APIRouter(tags=["operations"], route_class=JsonRoute)
# How long readiness waits for the database.
READY_SECONDS = 3.0


class NotReady(AppError):
    status = 503
    slug = "not-ready"
    title = "The database does not answer, is not migrated, or the role was not granted it"


@router.get("/healthz", summary="The process is up", openapi_extra=NO_DATABASE)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers, migrated for this release",
    responses={503: NotReady.openapi()},
)
async def readyz(request: Request, db: DbDep) -> dict[str, str]:
    tables: tuple[str, ...] = request.app.state.tables  # this release's (app.main)
    try:
        # Within a load balancer's health-check timeout: a database host that takes the
        # connection and never answers held this for the pool's 60 s.
        async with asyncio.timeout(READY_SECONDS):
            revisions, missing = await _read_twice(db, tables)
    except Exception as exc:  # any failure to reach the database means not ready
        raise NotReady() from exc
    if behind(revisions):
        raise NotReady("the database schema is behind this release: run `smsreg migrate`")
    if missing:
        raise NotReady(f"the role lacks its rights on {', '.join(missing)}: apply the grants")
    return {"status": "ready"}


async def _read_twice(db: Database, tables: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The revisions and the ungranted tables; read again once on a fresh connection if
    the pooled one was lost (a server restart, a terminated backend), so one blip that
    the next request would not see does not take the replica out of a load balancer."""
    try:
        return await _read(db, tables)
    except Exception as exc:
        if not database_unavailable(exc):
            raise
    return await _read(db, tables)


async def _read(db: Database, tables: tuple[str, ...]) -> tuple[list[str], list[str]]:
    async with db.transaction() as tx:
        revisions = list((await tx.execute(REVISIONS)).scalars())
        names = {"names": list(tables)}
        missing = [] if tx.sqlite else list((await tx.execute(UNGRANTED, names)).scalars())
        return revisions, missing
