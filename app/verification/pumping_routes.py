"""/v1/pumping: the pumping guard's blocks, for staff (see app/verification/pumping.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from app.core.deps import CtxDep, TxDep
from app.core.errors import InvalidInput, NotFound
from app.core.http import ONE_VALUE_EACH, JsonRoute
from app.core.text import NoPhoneNumber
from app.staff.auth import STAFF_PROBLEMS, PumpingAdmin, PumpingRead
from app.verification import pumping

router = APIRouter(prefix="/v1/pumping", tags=["pumping guard"], route_class=JsonRoute)
BlockId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^blk_[A-Za-z0-9_\-]+$")]


class BlockPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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

    reason: Annotated[str, NoPhoneNumber] = Field(
        min_length=3, max_length=500, description="why the traffic is legitimate"
    )


@router.get(
    "/blocks",
    dependencies=[ONE_VALUE_EACH],
    responses={**STAFF_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Blocked number prefixes (admin, operator, auditor)",
)
async def list_blocks(
    staff: PumpingRead,
    tx: TxDep,
    ctx: CtxDep,
    all_: Annotated[bool, Query(alias="all", description="include lifted and expired")] = False,
) -> BlockList:
    rows = await pumping.list_blocks(tx, ctx, active_only=not all_)
    return BlockList(blocks=[BlockPublic.model_validate(row) for row in rows])


@router.post(
    "/blocks/{block_id}/lift",
    responses={
        **STAFF_PROBLEMS,
        404: NotFound.openapi(),
        409: pumping.BlockNotActive.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Lift a block at once, with a reason (admin)",
)
async def lift_block(
    block_id: BlockId, body: LiftRequest, staff: PumpingAdmin, tx: TxDep, ctx: CtxDep
) -> BlockPublic:
    block = await pumping.lift(tx, ctx, block_id=block_id, actor=staff.actor, reason=body.reason)
    return BlockPublic.model_validate(block)
