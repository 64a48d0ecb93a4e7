"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.db import Tx
from app.core.deps import RuntimeDep
from app.core.errors import AppError

router = APIRouter(tags=["operations"])


class NotReady(AppError):
    status = 503
    slug = "not-ready"
    title = "The database does not answer"


def _ping(tx: Tx) -> None:
    tx.execute("SELECT 1")


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers", responses={503: NotReady.openapi()})
async def readyz(rt: RuntimeDep) -> dict[str, str]:
    try:
        await rt.db.run(_ping)
    except Exception as exc:  # any failure to reach the database means not ready
        raise NotReady() from exc
    return {"status": "ready"}
