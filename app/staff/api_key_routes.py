"""/v1/api-keys: the admins' management of service-client API keys (app/clients holds the keys)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.clients import rotation, service
from app.clients.schemas import (
    ApiKeyCreate,
    ApiKeyListPublic,
    ApiKeyPublic,
    ApiKeyRotate,
    NewApiKeyPublic,
    RotatedApiKeyPublic,
    key_public,
    rotated_public,
)
from app.core.deps import CtxDep, TxDep
from app.core.errors import InvalidInput, NotFound
from app.core.http import NO_STORE, JsonRoute
from app.core.openapi import problems
from app.staff.auth import STAFF_PROBLEMS, STAFF_REFUSALS, StaffAdmin

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], route_class=JsonRoute)
KeyId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^key_[A-Za-z0-9_\-]+$")]


@router.post(
    "",
    status_code=201,
    responses={**STAFF_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Create an API key (admin): shown once",
)
async def create_key(
    body: ApiKeyCreate, staff: StaffAdmin, tx: TxDep, ctx: CtxDep, response: Response
) -> NewApiKeyPublic:
    limit = ctx.settings.api_key_max_age_days
    if body.expires_days is not None and body.expires_days > limit:
        # Over HTTP a key never outlives the maximum age (the command line still can).
        raise InvalidInput.field("expires_days", f"must be at most {limit}")
    new = await service.create(
        tx,
        ctx,
        name=body.name,
        scopes=[scope.value for scope in body.scopes],
        created_by=staff.actor,
        max_age_days=body.expires_days,
    )
    response.headers.update(NO_STORE)
    return NewApiKeyPublic(key=key_public(new.key, ctx.clock.now()), token=new.token)


@router.get("", responses=STAFF_PROBLEMS, summary="Every API key, newest first (admin)")
async def list_keys(staff: StaffAdmin, tx: TxDep, ctx: CtxDep) -> ApiKeyListPublic:
    now = ctx.clock.now()
    return ApiKeyListPublic(
        api_keys=[key_public(key, now) for key in await service.list_keys(tx, ctx)]
    )


@router.post(
    "/{key_id}/revoke",
    responses={**STAFF_PROBLEMS, 404: NotFound.openapi(), 409: service.ApiKeyRevoked.openapi()},
    summary="Revoke an API key at once (admin)",
)
async def revoke_key(key_id: KeyId, staff: StaffAdmin, tx: TxDep, ctx: CtxDep) -> ApiKeyPublic:
    key = await service.revoke(tx, ctx, key_id=key_id, actor=staff.actor)
    return key_public(key, ctx.clock.now())


@router.post(
    "/{key_id}/rotate",
    responses={
        **problems(*STAFF_REFUSALS, NotFound, service.ApiKeyRevoked, rotation.ApiKeyAlreadyRotated),
    },
    summary="Rotate an API key (admin): successor shown once; the old dies after the grace",
)
async def rotate_key(
    key_id: KeyId,
    staff: StaffAdmin,
    tx: TxDep,
    ctx: CtxDep,
    response: Response,
    body: ApiKeyRotate | None = None,
) -> RotatedApiKeyPublic:
    rotated = await rotation.rotate(
        tx,
        ctx,
        key_id=key_id,
        actor=staff.actor,
        grace_hours=body.grace_hours if body is not None else None,
    )
    response.headers.update(NO_STORE)
    return rotated_public(rotated, ctx.clock.now())
