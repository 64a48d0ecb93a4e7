"""Service-client API keys: shown once, stored as a keyed hash, scoped, expiring, revocable."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import select

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Tx
from app.core.errors import AppError, InvalidInput, NotFound, Unauthenticated
from app.core.ids import new_id
from app.models import ApiKey
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

    key: ApiKey
    token: str


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
    now = ctx.clock.now()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    days = max_age_days if max_age_days is not None else ctx.settings.api_key_max_age_days
    key = ApiKey(
        id=new_id("key"),
        name=name,
        prefix=token[:_SHOWN_CHARS],
        token_hash=ctx.keys.token_hash(token),
        token_key_id=ctx.keys.token.active_id,
        scopes=sorted(set(scopes)),
        created_by=created_by,
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
    )
    tx.session.add(key)
    record_event(
        tx,
        Tag.API_KEY_CREATED,
        actor=created_by,
        at=now,
        subject=key.id,
        details={"name": name, "scopes": key.scopes, "expires_at": key.expires_at.isoformat()},
    )
    return NewApiKey(key=key, token=token)


def list_keys(tx: Tx) -> list[ApiKey]:
    """Every key, newest first."""
    return list(tx.session.exec(select(ApiKey).order_by(sa.desc(ApiKey.__table__.c.created_at))))  # type: ignore[attr-defined]


def count(tx: Tx) -> int:
    """How many keys exist, revoked included."""
    return int(tx.scalar("SELECT count(*) FROM api_keys"))


def revoke(tx: Tx, ctx: Context, *, key_id: str, actor: str) -> ApiKey:
    """Revoke a key at once."""
    key = tx.session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is not None:
        raise ApiKeyRevoked(f"API key {key_id} was revoked at {key.revoked_at.isoformat()}")
    now = ctx.clock.now()
    key.revoked_at = now
    tx.session.add(key)
    record_event(tx, Tag.API_KEY_REVOKED, actor=actor, at=now, subject=key.id)
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
    return Client(id=key.id, name=key.name, scopes=tuple(key.scopes))
