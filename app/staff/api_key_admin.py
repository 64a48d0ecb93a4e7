"""The admins' API-key actions over HTTP: create, list, revoke, rotate.

Thin service functions over app.staff.api_keys that name the admin as the actor
(``created_by = staff:<id>``): offboarding finds the keys a person created, or was
shown by a rotation, by that name.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.context import Context
from app.core.db import Row, Tx
from app.core.errors import InvalidInput
from app.staff import api_keys
from app.staff.accounts import Staff
from app.staff.api_keys import NewApiKey, RotatedApiKey


def state(ctx: Context, key: Row) -> str:
    """active, rotated (a successor exists; dies at expires_at), expired or revoked."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at <= ctx.clock.now():
        return "expired"
    return "rotated" if key.rotated_to is not None else "active"


def create(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    name: str,
    scopes: Sequence[str],
    expires_days: int | None,
) -> NewApiKey:
    """A new key created by an admin, who sees it once."""
    limit = ctx.settings.api_key_max_age_days
    if expires_days is not None and expires_days > limit:
        # Over HTTP a key never outlives the maximum age (the command line still can).
        raise InvalidInput.field("expires_days", f"must be at most {limit}")
    return api_keys.create(
        tx, ctx, name=name, scopes=scopes, created_by=staff.actor, max_age_days=expires_days
    )


def list_all(tx: Tx, ctx: Context, *, staff: Staff) -> list[Row]:
    """Every key, newest first."""
    del ctx, staff
    return api_keys.list_keys(tx)


def revoke(tx: Tx, ctx: Context, *, staff: Staff, key_id: str) -> Row:
    """Revoke a key at once."""
    return api_keys.revoke(tx, ctx, key_id=key_id, actor=staff.actor)


def rotate(
    tx: Tx, ctx: Context, *, staff: Staff, key_id: str, grace_hours: int | None
) -> RotatedApiKey:
    """Issue a successor, shown once to the admin (who is then named as its creator)."""
    return api_keys.rotate(tx, ctx, key_id=key_id, actor=staff.actor, grace_hours=grace_hours)
