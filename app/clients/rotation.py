"""Rotating service-client API keys: a successor shown once, the old key kept for a grace
period, and the keys due for rotation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.clients import repository as repo
from app.clients.service import NewApiKey, create, live_key
from app.core.context import Context
from app.core.errors import AppError, InvalidInput
from app.core.tx import Tx
from app.models.api_key import ApiKey

MAX_GRACE_HOURS = 30 * 24
MAX_DUE_WITHIN_DAYS = 365


class ApiKeyAlreadyRotated(AppError):
    status = 409
    slug = "api-key-already-rotated"
    title = "The API key was already rotated; rotate its successor instead"


@dataclass(frozen=True)
class RotatedApiKey:
    """A rotation: the old key (with its shortened expiry) and its successor, shown once."""

    old: ApiKey
    new: NewApiKey


@dataclass(frozen=True)
class DueKey:
    """A live key past or near its end: when it is due, and how."""

    key: ApiKey
    due_at: dt.datetime
    state: str  # due, overdue (older than the maximum age, still valid) or expired


async def rotate(
    tx: Tx, ctx: Context, *, key_id: str, actor: str, grace_hours: int | None = None
) -> RotatedApiKey:
    """Issue a successor (same name and scopes); the old key dies when the grace period ends.

    The old key's expiry is cut to now + grace, never lengthened. A revoked or already
    rotated key is refused before anything is written.
    """
    grace = ctx.settings.api_key_grace_hours if grace_hours is None else grace_hours
    if not 0 <= grace <= MAX_GRACE_HOURS:
        raise InvalidInput.field("grace_hours", f"must be 0 to {MAX_GRACE_HOURS}")
    # Held until commit (PostgreSQL; SQLite holds its write lock from the start), so two
    # rotations of one key run one after the other and the second is refused.
    key = await live_key(tx, key_id, for_update=True)
    if key.rotated_to is not None:
        raise ApiKeyAlreadyRotated(f"API key {key_id} was already rotated to {key.rotated_to}")
    now = ctx.clock.now()
    # The successor lives the usual maximum age, or the old key's own lifetime if shorter.
    lifetime_days = max(1, round((key.expires_at - key.created_at) / dt.timedelta(days=1)))
    new = await create(
        tx,
        ctx,
        name=key.name,
        scopes=key.scopes,
        created_by=actor,
        max_age_days=min(lifetime_days, ctx.settings.api_key_max_age_days),
        rotated_from=key.id,
    )
    expires_at = min(key.expires_at, now + dt.timedelta(hours=grace))
    if not await repo.mark_rotated(tx, key_id=key.id, successor=new.key.id, expires_at=expires_at):
        # Unreachable while the row is held; the guard repeats the rule.
        raise ApiKeyAlreadyRotated(f"API key {key_id} changed while it was being rotated")
    # The keys this one replaced, still in their grace period, end no later than it: a
    # rotation with no grace (a leak) left its predecessor working for up to a day.
    ended = await repo.end_rotated_by(tx, client_id=key.client_id or key.id, end=expires_at)
    await record_event(
        tx,
        Tag.API_KEY_ROTATED,
        actor=actor,
        at=now,
        subject=key.id,
        details={
            "rotated_to": new.key.id,
            "grace_hours": grace,
            "old_expires_at": expires_at.isoformat(),
            **({"predecessors_ended": ended} if ended else {}),
        },
    )
    key.rotated_to, key.expires_at = new.key.id, expires_at
    return RotatedApiKey(old=key, new=new)


async def rotate_created_by(
    tx: Tx, ctx: Context, *, owner: str, actor: str, grace_hours: int
) -> tuple[list[RotatedApiKey], list[ApiKey]]:
    """Rotate every live key ``owner`` created (offboarding); those already rotated, still
    in their grace period, end no later than this grace period. Returns both lists."""
    now = ctx.clock.now()
    keys = await repo.live_created_by(tx, actor=owner, now=now)
    rotated = [
        await rotate(tx, ctx, key_id=key.id, actor=actor, grace_hours=grace_hours)
        for key in keys
        if key.rotated_to is None
    ]
    ending = [key for key in keys if key.rotated_to is not None]
    end = now + dt.timedelta(hours=grace_hours)
    for key in ending:
        if key.expires_at > end:
            await repo.cut_expiry(tx, key_id=key.id, expires_at=end)
            key.expires_at = end
    return rotated, ending


async def due(tx: Tx, ctx: Context, *, within_days: int | None = None) -> list[DueKey]:
    """Live keys (not revoked, not rotated) past or within ``within_days`` of their end.

    A key's end is the earlier of its expiry and its maximum age (a key created with a
    longer lifetime is overdue once older than the maximum age); the soonest end first.
    """
    days = ctx.settings.api_key_due_within_days if within_days is None else within_days
    if not 0 <= days <= MAX_DUE_WITHIN_DAYS:
        raise InvalidInput.field("within_days", f"must be 0 to {MAX_DUE_WITHIN_DAYS}")
    now = ctx.clock.now()
    horizon = now + dt.timedelta(days=days)
    max_age = dt.timedelta(days=ctx.settings.api_key_max_age_days)
    found = []
    for key in await repo.live_ending_by(tx, horizon=horizon, born_before=horizon - max_age):
        due_at = min(key.expires_at, key.created_at + max_age)
        kind = "expired" if key.expires_at <= now else "overdue" if due_at <= now else "due"
        found.append(DueKey(key=key, due_at=due_at, state=kind))
    return sorted(found, key=lambda item: (item.due_at, item.key.id))
