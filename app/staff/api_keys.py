"""Service-client API keys: shown once, stored as a keyed hash, scoped, expiring, revocable."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Row, Tx
from app.core.errors import AppError, InvalidInput, NotFound, Unauthenticated
from app.core.ids import new_id
from app.staff.scopes import Scope

TOKEN_PREFIX = "smsreg_sk_"  # noqa: S105 (a label, not a secret)
_SHOWN_CHARS = len(TOKEN_PREFIX) + 6
_LAST_USED_RESOLUTION = dt.timedelta(minutes=5)


class ApiKeyRevoked(AppError):
    status = 409
    slug = "api-key-revoked"
    title = "The API key is already revoked"


class ApiKeyAlreadyRotated(AppError):
    status = 409
    slug = "api-key-already-rotated"
    title = "The API key was already rotated; rotate its successor instead"


@dataclass(frozen=True)
class Client:
    """An authenticated service client: what the rest of a request needs to know.

    ``id`` is the client's: its first key's id, which the keys that rotation issues
    after it share.
    """

    id: str
    name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key: the only moment the raw token exists."""

    key: Row
    token: str


@dataclass(frozen=True)
class RotatedApiKey:
    """A rotation: the old key (with its shortened expiry) and its successor, shown once."""

    old: Row
    new: NewApiKey


_LIST = (
    "SELECT id, name, prefix, scopes, created_by, created_at, expires_at, revoked_at, "
    "last_used_at, rotated_from, rotated_to FROM api_keys"
)
MAX_GRACE_HOURS = 30 * 24
MAX_DUE_WITHIN_DAYS = 365


def create(
    tx: Tx,
    ctx: Context,
    *,
    name: str,
    scopes: Sequence[str],
    created_by: str,
    max_age_days: int | None = None,
    rotated_from: str | None = None,
) -> NewApiKey:
    """Create a key; the raw token is returned once and never stored."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput.field("name", "must be 1 to 100 characters")
    known = {scope.value for scope in Scope}
    unknown = sorted(set(scopes) - known)
    if unknown or not scopes:
        raise InvalidInput.field("scopes", f"must be some of {sorted(known)}")
    days = max_age_days if max_age_days is not None else ctx.settings.api_key_max_age_days
    if days < 1:
        raise InvalidInput.field("expires_days", "must be at least 1")
    now = ctx.clock.now()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = Row(
        id=new_id("key"),
        name=name,
        prefix=token[:_SHOWN_CHARS],
        scopes=sorted(set(scopes)),
        created_by=created_by,
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
        revoked_at=None,
        last_used_at=None,
        rotated_from=rotated_from,
        rotated_to=None,
    )
    # A successor speaks for the same client as the key it replaces, so what that client
    # started (a verification in flight, an idempotency key) is still its own afterwards.
    client_id = None
    if rotated_from is not None:
        client_id = tx.scalar(
            "SELECT coalesce(client_id, id) AS client_id FROM api_keys WHERE id = :id",
            {"id": rotated_from},
        )
    tx.execute(
        "INSERT INTO api_keys (id, name, prefix, token_hash, token_key_id, scopes, created_by, "
        "created_at, expires_at, rotated_from, client_id) VALUES (:id, :name, :prefix, "
        ":token_hash, :token_key_id, :scopes, :created_by, :created_at, :expires_at, "
        ":rotated_from, :client_id)",
        {
            **key,
            "token_hash": ctx.keys.token_hash(token),
            "token_key_id": ctx.keys.token.active_id,
            "client_id": client_id,
        },
    )
    record_event(
        tx,
        Tag.API_KEY_CREATED,
        actor=created_by,
        at=now,
        subject=key.id,
        details={
            "name": name,
            "scopes": key.scopes,
            "expires_at": key.expires_at.isoformat(),
            **({"rotated_from": rotated_from} if rotated_from else {}),
        },
    )
    return NewApiKey(key=key, token=token)


def list_keys(tx: Tx) -> list[Row]:
    """Every key, newest first (never the key itself)."""
    return tx.all(_LIST + " ORDER BY created_at DESC, id")


def count(tx: Tx) -> int:
    """How many keys exist, revoked included."""
    return int(tx.scalar("SELECT count(*) AS n FROM api_keys"))


def revoke(tx: Tx, ctx: Context, *, key_id: str, actor: str) -> Row:
    """Revoke a key at once."""
    key = tx.one(_LIST + " WHERE id = :id", {"id": key_id})
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is not None:
        raise ApiKeyRevoked(f"API key {key_id} was revoked at {key.revoked_at.isoformat()}")
    now = ctx.clock.now()
    tx.execute("UPDATE api_keys SET revoked_at = :now WHERE id = :id", {"now": now, "id": key_id})
    record_event(tx, Tag.API_KEY_REVOKED, actor=actor, at=now, subject=key_id)
    key["revoked_at"] = now
    return key


def rotate(
    tx: Tx, ctx: Context, *, key_id: str, actor: str, grace_hours: int | None = None
) -> RotatedApiKey:
    """Issue a successor (same name and scopes); the old key dies when the grace period ends.

    The old key's expiry is cut to now + grace, never lengthened. A revoked or already
    rotated key is refused before anything is written.
    """
    grace = ctx.settings.api_key_grace_hours if grace_hours is None else grace_hours
    if not 0 <= grace <= MAX_GRACE_HOURS:
        raise InvalidInput.field("grace_hours", f"must be 0 to {MAX_GRACE_HOURS}")
    # Held until commit on PostgreSQL (SQLite holds its write lock from BEGIN IMMEDIATE),
    # so two rotations of one key run one after the other and the second is refused.
    lock = "" if tx.sqlite else " FOR UPDATE"
    key = tx.one(_LIST + " WHERE id = :id" + lock, {"id": key_id})
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is not None:
        raise ApiKeyRevoked(f"API key {key_id} was revoked at {key.revoked_at.isoformat()}")
    if key.rotated_to is not None:
        raise ApiKeyAlreadyRotated(f"API key {key_id} was already rotated to {key.rotated_to}")
    now = ctx.clock.now()
    # The successor lives the usual maximum age, or the old key's own lifetime if shorter.
    lifetime_days = max(1, round((key.expires_at - key.created_at) / dt.timedelta(days=1)))
    new = create(
        tx,
        ctx,
        name=key.name,
        scopes=key.scopes,
        created_by=actor,
        max_age_days=min(lifetime_days, ctx.settings.api_key_max_age_days),
        rotated_from=key.id,
    )
    expires_at = min(key.expires_at, now + dt.timedelta(hours=grace))
    changed = tx.execute(
        "UPDATE api_keys SET rotated_to = :new_id, expires_at = :expires_at WHERE id = :id "
        "AND rotated_to IS NULL AND revoked_at IS NULL",
        {"new_id": new.key.id, "expires_at": expires_at, "id": key.id},
    )
    if changed != 1:  # unreachable while the row is held; the guard repeats the rule
        raise ApiKeyAlreadyRotated(f"API key {key_id} changed while it was being rotated")
    record_event(
        tx,
        Tag.API_KEY_ROTATED,
        actor=actor,
        at=now,
        subject=key.id,
        details={
            "rotated_to": new.key.id,
            "grace_hours": grace,
            "old_expires_at": expires_at.isoformat(),
        },
    )
    key.update(rotated_to=new.key.id, expires_at=expires_at)
    return RotatedApiKey(old=key, new=new)


def due(tx: Tx, ctx: Context, *, within_days: int | None = None) -> list[Row]:
    """Live keys (not revoked, not rotated) past or within ``within_days`` of their end.

    A key's end is the earlier of its expiry and its maximum age (a key created with a
    longer lifetime is overdue once older than the maximum age). Each row adds ``due_at``
    and ``state``: ``due`` (ends soon), ``overdue`` (older than the maximum age, still
    valid) or ``expired`` (no longer accepted, but neither rotated nor revoked); the
    soonest end first.
    """
    days = ctx.settings.api_key_due_within_days if within_days is None else within_days
    if not 0 <= days <= MAX_DUE_WITHIN_DAYS:
        raise InvalidInput.field("within_days", f"must be 0 to {MAX_DUE_WITHIN_DAYS}")
    now = ctx.clock.now()
    horizon = now + dt.timedelta(days=days)
    max_age = dt.timedelta(days=ctx.settings.api_key_max_age_days)
    rows = tx.all(
        _LIST + " WHERE revoked_at IS NULL AND rotated_to IS NULL "
        "AND (expires_at <= :horizon OR created_at <= :born_before)",
        {"horizon": horizon, "born_before": horizon - max_age},
    )
    for row in rows:
        row["due_at"] = min(row.expires_at, row.created_at + max_age)
        row["state"] = (
            "expired" if row.expires_at <= now else "overdue" if row.due_at <= now else "due"
        )
    return sorted(rows, key=lambda row: (row.due_at, row.id))


@functools.lru_cache(maxsize=8)
def _authenticate_sql(n: int) -> str:
    return (
        "SELECT id, coalesce(client_id, id) AS client_id, name, scopes, expires_at, revoked_at, "  # noqa: S608
        "last_used_at, token_key_id FROM api_keys "
        f"WHERE token_hash IN ({', '.join(f':h{i}' for i in range(n))})"
    )


def authenticate(tx: Tx, ctx: Context, *, token: str) -> Client:
    """The live client for a raw token, or Unauthenticated (one answer for every failure)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise Unauthenticated("invalid API key")
    # Hash under every key still in the ring, so a rotated token key keeps old API keys valid.
    raw = token.encode()
    hashes = {
        f"h{i}": ctx.keys.token.mac(raw, key_id=key_id).hex()
        for i, key_id in enumerate(ctx.keys.token.keys)
    }
    key = tx.one(_authenticate_sql(len(hashes)), hashes)
    now = ctx.clock.now()
    if key is None or key.revoked_at is not None or key.expires_at <= now:
        raise Unauthenticated("invalid API key")
    if key.token_key_id != ctx.keys.token.active_id:
        # Rehash on use under the active token key, so the old one can leave the ring
        # (`smsreg keys status` counts the live keys still on it).
        tx.execute(
            "UPDATE api_keys SET token_hash = :h, token_key_id = :k WHERE id = :id",
            {"h": ctx.keys.token_hash(token), "k": ctx.keys.token.active_id, "id": key.id},
        )
        tx.keep()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        # Coarse on purpose: a write per request would cost every caller a disk sync.
        tx.execute(
            "UPDATE api_keys SET last_used_at = :now WHERE id = :id", {"now": now, "id": key.id}
        )
        # Authentication runs in the transaction of the action it allows: the use is
        # recorded even if that action is then refused.
        tx.keep()
    return Client(id=key.client_id, name=key.name, scopes=tuple(key.scopes))
