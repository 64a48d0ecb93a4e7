"""Service-client API keys: shown once, stored as a keyed hash, scoped, expiring and
revocable (rotation with a grace period: app/clients/rotation.py)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.clients import repository as repo
from app.clients.scopes import Scope
from app.core.context import Context
from app.core.errors import AppError, InvalidInput, NotFound, Unauthenticated
from app.core.ids import new_id
from app.core.text import NO_CONTROL_CHARACTERS, no_phone_number, visible
from app.core.tx import Tx
from app.models.api_key import ApiKey

TOKEN_PREFIX = "smsreg_sk_"  # noqa: S105 (a label, not a secret)
MAX_TOKEN_LENGTH = 200
# Coarse on purpose: a write on every request would cost every caller a commit's work.
_LAST_USED_RESOLUTION = dt.timedelta(minutes=5)


class ApiKeyRevoked(AppError):
    status = 409
    slug = "api-key-revoked"
    title = "The API key is already revoked"


# The id of the service's own client of the self-service pages (SELF_SERVICE, below).
SELF_SERVICE_ID = "key_self_service"


@dataclass(frozen=True)
class Client:
    """An authenticated service client: what the rest of a request needs to know.

    ``id`` is the client's: its first key's id, which the keys that rotation issues
    after it share.
    """

    id: str
    name: str
    scopes: tuple[str, ...]

    @property
    def actor(self) -> str:
        """How audit rows name this client."""
        return f"api_key:{self.id}"

    @property
    def self_service(self) -> bool:
        """Whether this is the service's own client of the self-service pages."""
        return self.id == SELF_SERVICE_ID


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key: the only moment the raw token exists."""

    key: ApiKey
    token: str


def state(key: ApiKey, now: dt.datetime) -> str:
    """active, rotated (a successor exists; dies at expires_at), expired or revoked."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at <= now:
        return "expired"
    return "rotated" if key.rotated_to is not None else "active"


def _check_name(name: str) -> None:
    """A new key's name: the command line takes any text, and a line break in a name
    would forge a row in `api-keys list` (read in cron mail); every listing prints it.
    (A successor keeps its key's name, whatever the rules were when that was made.)"""
    if not re.fullmatch(NO_CONTROL_CHARACTERS, name):
        raise InvalidInput.field("name", "must not contain control characters")
    try:
        visible(no_phone_number(name))
    except ValueError as exc:
        raise InvalidInput.field("name", str(exc)) from None


async def create(
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
    if rotated_from is None:
        _check_name(name)
    known = {scope.value for scope in Scope}
    unknown = sorted(set(scopes) - known)
    if unknown or not scopes:
        raise InvalidInput.field("scopes", f"must be some of {sorted(known)}")
    most = ctx.settings.api_key_max_age_days
    days = max_age_days if max_age_days is not None else most
    if not 1 <= days <= most:
        raise InvalidInput.field("expires_days", f"must be 1 to {most} (the keys' maximum age)")
    now = ctx.clock.now()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    # A successor speaks for the same client as the key it replaces, so what that client
    # started (a verification in flight, an idempotency key) is still its own afterwards.
    client_id = None if rotated_from is None else await repo.client_of(tx, rotated_from)
    key = ApiKey(
        id=new_id("key"),
        name=name,
        prefix=TOKEN_PREFIX,
        token_hash=ctx.keys.token_hash(token),
        token_key_id=ctx.keys.token.active_id,
        scopes=sorted(set(scopes)),
        created_by=created_by,
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
        rotated_from=rotated_from,
        client_id=client_id,
    )
    await repo.insert(tx, key)
    await record_event(
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


async def made_by(tx: Tx, actor: str) -> tuple[int, ApiKey | None]:
    """How many keys ``actor`` made (a rotation's successor included), and the newest."""
    return await repo.made_by(tx, actor)


async def list_keys(tx: Tx, ctx: Context) -> list[ApiKey]:
    """Every key, newest first (never the key itself); not the self-service pages' row,
    which no token opens and which listed as a key revoked before it was made."""
    return [key for key in await repo.list_all(tx) if key.id != SELF_SERVICE_ID]


async def list_keys_with_states(tx: Tx, ctx: Context) -> list[tuple[ApiKey, str]]:
    """Every key (:func:`list_keys`) with its :func:`state` now: what the console and
    `smsreg api-keys list` show alike."""
    now = ctx.clock.now()
    return [(key, state(key, now)) for key in await list_keys(tx, ctx)]


async def count(tx: Tx, ctx: Context) -> int:
    """How many keys exist, revoked included."""
    return await repo.count(tx)


async def live_key(tx: Tx, key_id: str, *, for_update: bool = False) -> ApiKey:
    """A key that exists and is not revoked (``for_update``: held until commit)."""
    key = await repo.get(tx, key_id, for_update=for_update)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is not None:
        raise ApiKeyRevoked(f"API key {key_id} was revoked at {key.revoked_at.isoformat()}")
    return key


async def revoke(tx: Tx, ctx: Context, *, key_id: str, actor: str) -> ApiKey:
    """Revoke a key at once."""
    key = await live_key(tx, key_id)
    now = ctx.clock.now()
    await repo.revoke(tx, key_id=key_id, now=now)
    await record_event(tx, Tag.API_KEY_REVOKED, actor=actor, at=now, subject=key_id)
    key.revoked_at = now
    return key


async def authenticate(tx: Tx, ctx: Context, *, token: str) -> Client:
    """The live client for a raw token, or Unauthenticated (one answer for every failure)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("invalid API key")
    # Hashed under every key still in the ring, so a rotated token key keeps old keys valid.
    ring = ctx.keys.token
    raw = token.encode()
    key = await repo.find_by_hashes(tx, [ring.mac(raw, key_id=kid).hex() for kid in ring.keys])
    now = ctx.clock.now()
    if key is None or key.revoked_at is not None or key.expires_at <= now:
        raise Unauthenticated("invalid API key")
    if key.token_key_id != ring.active_id:
        # Rehashed on use under the active token key, so the old one can leave the ring
        # (`smsreg keys status` counts the live keys still on it).
        await repo.rehash(
            tx, key_id=key.id, token_hash=ctx.keys.token_hash(token), token_key_id=ring.active_id
        )
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        await repo.touch(tx, key_id=key.id, now=now)
    return Client(id=key.client_id, name=key.name, scopes=tuple(key.scopes))


# The service's own client for the verifications data subjects start themselves
# (app/subject). Its row is revoked from the start and holds a hash no token has, so
# nothing can ever authenticate as it and no key report lists it as due.
SELF_SERVICE = Client(id=SELF_SERVICE_ID, name="self-service", scopes=())


async def self_service_client(tx: Tx, ctx: Context) -> Client:
    """The self-service client, its row made on first use (verifications name a client)."""
    at = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    await repo.ensure_key(
        tx,
        ApiKey(
            id=SELF_SERVICE.id,
            name="self-service: data subjects' own verifications",
            prefix="(none)",
            token_hash="self-service: no token",  # noqa: S106 (no token hashes to this)
            token_key_id="none",  # noqa: S106 (no key: no token is made)
            scopes=[],
            created_by="system",
            created_at=at,
            expires_at=at,
            revoked_at=at,
        ),
    )
    return SELF_SERVICE
