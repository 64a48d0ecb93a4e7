"""/v1/pumping: the pumping guard's blocks, for staff (see app/verification/pumping.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from app.core.context import Context
from app.core.db import Tx
from app.core.deps import runtime_of
from app.core.errors import AUTH_PROBLEMS, InvalidInput, NotFound
from app.staff.accounts import Staff
from app.staff.auth import PumpingAdmin, PumpingRead, as_staff
from app.verification import pumping

router = APIRouter(prefix="/v1/pumping", tags=["pumping guard"])
BlockId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^blk_[A-Za-z0-9_\-]+$")]


class BlockPublic(BaseModel):
    id: str
    prefix: str = Field(description="country code and first national digits, e.g. +819011")
    region: str
    blocked_at: dt.datetime
    ends_at: dt.datetime
    sends: int = Field(description="settled sends in the window when the block began")
    approvals: int
    lifted_at: dt.datetime | None = None
    lifted_by: str | None = None
    lift_reason: str | None = None


class BlockList(BaseModel):
    blocks: list[BlockPublic]


class LiftRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500, description="why the traffic is legitimate")


def _list(tx: Tx, ctx: Context, *, staff: Staff, active_only: bool) -> BlockList:
    rows = pumping.list_blocks(tx, ctx, active_only=active_only)
    return BlockList(blocks=[BlockPublic(**row) for row in rows])


def _lift(tx: Tx, ctx: Context, *, staff: Staff, block_id: str, reason: str) -> BlockPublic:
    return BlockPublic(**pumping.lift(tx, ctx, block_id=block_id, actor=staff.actor, reason=reason))


@router.get(
    "/blocks",
    responses={**AUTH_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Blocked number prefixes (admin, operator, auditor)",
)
async def list_blocks(
    caller: PumpingRead,
    request: Request,
    all_: Annotated[bool, Query(alias="all", description="include lifted and expired")] = False,
) -> BlockList:
    rt = runtime_of(request)
    return await rt.db.run(as_staff, rt.ctx, caller=caller, action=_list, active_only=not all_)


@router.post(
    "/blocks/{block_id}/lift",
    responses={
        **AUTH_PROBLEMS,
        404: NotFound.openapi(),
        409: pumping.BlockNotActive.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Lift a block at once, with a reason (admin)",
)
async def lift_block(
    block_id: BlockId, body: LiftRequest, caller: PumpingAdmin, request: Request
) -> BlockPublic:
    rt = runtime_of(request)
    return await rt.db.run(
        as_staff, rt.ctx, caller=caller, action=_lift, block_id=block_id, reason=body.reason
    )
