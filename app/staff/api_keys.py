"""Service-client API keys: shown once, stored as a keyed hash, scoped, expiring, revocable."""

from __future__ import annotations

import datetime as dt
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


@dataclass(frozen=True)
class Client:
    """An authenticated service client: what the rest of a request needs to know."""

    id: str
    name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key: the only moment the raw token exists."""

    key: Row
    token: str


_LIST = (
    "SELECT id, name, prefix, scopes, created_by, created_at, expires_at, revoked_at, "
    "last_used_at FROM api_keys"
)


def create(
    tx: Tx,
    ctx: Context,
    *,
    name: str,
    scopes: Sequence[str],
    created_by: str,
    max_age_days: int | None = None,
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
    )
    tx.execute(
        "INSERT INTO api_keys (id, name, prefix, token_hash, token_key_id, scopes, created_by, "
        "created_at, expires_at) VALUES (:id, :name, :prefix, :token_hash, :token_key_id, "
        ":scopes, :created_by, :created_at, :expires_at)",
        {**key, "token_hash": ctx.keys.token_hash(token), "token_key_id": ctx.keys.token.active_id},
    )
    record_event(
        tx,
        Tag.API_KEY_CREATED,
        actor=created_by,
        at=now,
        subject=key.id,
        details={"name": name, "scopes": key.scopes, "expires_at": key.expires_at.isoformat()},
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


def authenticate(tx: Tx, ctx: Context, *, token: str) -> Client:
    """The live client for a raw token, or Unauthenticated (one answer for every failure)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise Unauthenticated("invalid API key")
    # Hash under every key still in the ring, so a rotated token key keeps old API keys valid.
    hashes = {
        f"h{i}": ctx.keys.token.mac(token.encode(), key_id=key_id).hex()
        for i, key_id in enumerate(ctx.keys.token.keys)
    }
    key = tx.one(
        "SELECT id, name, scopes, expires_at, revoked_at, last_used_at FROM api_keys "  # noqa: S608
        f"WHERE token_hash IN ({', '.join(':' + name for name in hashes)})",
        hashes,
    )
    now = ctx.clock.now()
    if key is None or key.revoked_at is not None or key.expires_at <= now:
        raise Unauthenticated("invalid API key")
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        # Coarse on purpose: a write per request would cost every caller a disk sync.
        tx.execute(
            "UPDATE api_keys SET last_used_at = :now WHERE id = :id", {"now": now, "id": key.id}
        )
        # Authentication runs in the transaction of the action it allows: the use is
        # recorded even if that action is then refused.
        tx.keep()
    return Client(id=key.id, name=key.name, scopes=tuple(key.scopes))
