"""/console/api-keys: service clients' keys (create with scopes, rotate with a grace
period, revoke, what is due); /console/pumping: the pumping guard's blocks (lift with a
reason). The same services and role sets as the API; a new key's token is shown once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from app.clients import rotation
from app.clients import service as clients
from app.clients.schemas import ApiKeyCreate, ApiKeyRotate
from app.clients.scopes import Scope
from app.console.auth import ConsoleForm, ConsoleRoles
from app.console.web import (
    Confirm,
    ConsoleRoute,
    Made,
    checked,
    confirmed,
    made_since_shown,
    refuse_sent_again,
    staff_page,
)
from app.core.deps import CtxDep, TxDep
from app.models.api_key import ApiKey
from app.staff.auth import Staff
from app.staff.roles import PUMPING_ADMIN, PUMPING_READ, STAFF_ADMIN
from app.verification import pumping
from app.verification.pumping_routes import LiftRequest

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

KeysPage = Annotated[Staff, Depends(ConsoleRoles(STAFF_ADMIN))]
KeysForm = Annotated[Staff, Depends(ConsoleForm(STAFF_ADMIN))]
BlocksPage = Annotated[Staff, Depends(ConsoleRoles(PUMPING_READ))]
BlocksForm = Annotated[Staff, Depends(ConsoleForm(PUMPING_ADMIN))]
KeyId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^key_[A-Za-z0-9_\-]+$")]
BlockId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^blk_[A-Za-z0-9_\-]+$")]


@router.get("/api-keys")
async def keys_page(request: Request, staff: KeysPage, tx: TxDep, ctx: CtxDep) -> Response:
    context = {
        "keys": await clients.list_keys_with_states(tx, ctx),
        "due": await rotation.due(tx, ctx),
        "scopes": [scope.value for scope in Scope],
        "made": (await clients.made_by(tx, staff.actor))[0],
    }
    return staff_page(request, ctx, staff, "api_keys.html", context)


@router.post("/api-keys")
async def create_key(
    request: Request,
    staff: KeysForm,
    tx: TxDep,
    ctx: CtxDep,
    name: Annotated[str, Form(max_length=200)],
    made: Made = 0,
    scopes: Annotated[list[str], Form(max_length=len(Scope))] = [],  # noqa: B006
) -> Response:
    body = checked(ApiKeyCreate, {"name": name, "scopes": scopes})
    # The page shows the token once: sent again (a reload of that page, a double click)
    # the form would make a second live key, and the first, already copied, stay live.
    await refuse_sent_again(
        tx, form="api-key", actor=staff.actor, shown_after=made,
        made_by=lambda: clients.made_by(tx, staff.actor), said=_key_made,
    )  # fmt: skip
    new = await clients.create(
        tx, ctx, name=body.name, scopes=[s.value for s in body.scopes], created_by=staff.actor
    )
    return staff_page(request, ctx, staff, "key_token.html", {"key": new.key, "token": new.token})


def _key_made(key: ApiKey) -> str:
    if key.rotated_from is not None:
        # A rotation's successor, in use by its client by now: never to be revoked for it.
        made = f"API key {key.id} ({key.name}) was made by rotating {key.rotated_from}"
        return f"{made_since_shown(made, key.created_at)} Open the page again to make a key."
    made = f"API key {key.id} ({key.name}) was made"
    return (
        f"{made_since_shown(made, key.created_at)} Its token was shown once, on the answer "
        f"to the first send: if it was not kept, revoke {key.id} and make another from a "
        "fresh page."
    )


@router.post("/api-keys/{key_id}/rotate")
async def rotate_key(
    request: Request,
    key_id: KeyId,
    staff: KeysForm,
    tx: TxDep,
    ctx: CtxDep,
    grace_hours: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    # A form sends text; the API's schema takes a JSON integer only (so "5" in JSON is
    # refused): digits become the number, anything else is refused by the schema.
    hours = int(grace_hours) if grace_hours.isdecimal() and grace_hours.isascii() else grace_hours
    body = checked(ApiKeyRotate, {"grace_hours": None if hours == "" else hours})
    done = await rotation.rotate(
        tx, ctx, key_id=key_id, actor=staff.actor, grace_hours=body.grace_hours
    )
    old_ended = done.old.expires_at <= ctx.clock.now()  # a grace of 0: it ends now
    context = {
        "key": done.new.key,
        "token": done.new.token,
        "old": done.old,
        "old_ended": old_ended,
    }
    return staff_page(request, ctx, staff, "key_token.html", context)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_key(
    key_id: KeyId, staff: KeysForm, tx: TxDep, ctx: CtxDep, confirm: Confirm = None
) -> Response:
    confirmed(confirm)
    await clients.revoke(tx, ctx, key_id=key_id, actor=staff.actor)
    return RedirectResponse("/console/api-keys", status_code=303)


@router.get("/pumping")
async def blocks_page(request: Request, staff: BlocksPage, tx: TxDep, ctx: CtxDep) -> Response:
    context = {
        "blocks": await pumping.list_blocks(tx, ctx),
        "may_lift": staff.role in PUMPING_ADMIN,
    }
    return staff_page(request, ctx, staff, "pumping.html", context)


@router.post("/pumping/{block_id}/lift")
async def lift_block(
    block_id: BlockId,
    staff: BlocksForm,
    tx: TxDep,
    ctx: CtxDep,
    reason: Annotated[str, Form(max_length=1000)],
) -> Response:
    body = checked(LiftRequest, {"reason": reason})
    await pumping.lift(tx, ctx, block_id=block_id, actor=staff.actor, reason=body.reason)
    return RedirectResponse("/console/pumping", status_code=303)
