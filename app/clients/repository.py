"""Every query on the api_keys table.

Authentication runs on every client request and uses fixed SQL (see app.core.db.Sql);
the rest are SQLAlchemy Core statements on the ApiKey table.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.core import sql
from app.core.sql import Json, Sql
from app.core.tx import Tx
from app.models.api_key import ApiKey
from app.models.types import table

api_keys = table(ApiKey)
_c = api_keys.c


class KeyForAuth(NamedTuple):
    """What authenticating a request needs of its key."""

    id: str
    client_id: str
    name: str
    scopes: Annotated[list[str], Json]
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    token_key_id: str


@functools.cache
def _authenticate_sql(n: int) -> Sql[KeyForAuth]:
    marks = ", ".join(f":h{i}" for i in range(n))
    return Sql(
        "SELECT id, coalesce(client_id, id), name, scopes, expires_at, revoked_at, "  # noqa: S608
        f"last_used_at, token_key_id FROM api_keys WHERE token_hash IN ({marks})",
        KeyForAuth,
        read_only=True,
    )


async def find_by_hashes(tx: Tx, hashes: Sequence[str]) -> KeyForAuth | None:
    """The key whose token hashes to one of ``hashes`` (one per token key in the ring)."""
    return await tx.fetch_one(
        _authenticate_sql(len(hashes)), {f"h{i}": h for i, h in enumerate(hashes)}
    )


# Never back in time: a use kept past a refusal is written after later ones may be.
_TOUCH = Sql(
    "UPDATE api_keys SET last_used_at = :now "
    "WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :now)"
)
_REHASH = Sql("UPDATE api_keys SET token_hash = :hash, token_key_id = :key_id WHERE id = :id")


async def touch(tx: Tx, *, key_id: str, now: dt.datetime) -> None:
    """Record that a key was used, also when the request it authenticated is refused."""
    params = {"now": now, "id": key_id}
    await tx.run(_TOUCH, params)
    tx.keep_if_refused(_TOUCH, params)


async def rehash(tx: Tx, *, key_id: str, token_hash: str, token_key_id: str) -> None:
    """Store a key's hash under another token key."""
    await tx.run(_REHASH, {"hash": token_hash, "key_id": token_key_id, "id": key_id})


# -- administration (cold paths) ---------------------------------------------------------


def _key(row: Any) -> ApiKey:
    return ApiKey(**row._mapping)


async def insert(tx: Tx, key: ApiKey) -> None:
    """Store a new key (its token only as a keyed hash)."""
    await tx.execute(sa.insert(api_keys).values(key.model_dump()))


async def get(tx: Tx, key_id: str, *, for_update: bool = False) -> ApiKey | None:
    """One key, or None; ``for_update`` holds it until commit (PostgreSQL)."""
    statement = sa.select(api_keys).where(_c.id == key_id)
    if for_update and not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else _key(row)


async def made_by(tx: Tx, actor: str) -> tuple[int, ApiKey | None]:
    """How many keys a person made (or was shown by a rotation), and the newest of them.
    Keys are never deleted, so the count only grows."""
    row = (await tx.execute(sql.made_by(api_keys, _c.created_by, actor, _c.created_at))).first()
    return (0, None) if row is None else (row.made, ApiKey(**sql.without_made(row)))


async def client_of(tx: Tx, key_id: str) -> str | None:
    """The client a key speaks for (its first key's id)."""
    found: str | None = await tx.scalar(
        sa.select(sa.func.coalesce(_c.client_id, _c.id)).where(_c.id == key_id)
    )
    return found


async def list_all(tx: Tx) -> list[ApiKey]:
    """Every key, newest first."""
    rows = await tx.execute(sa.select(api_keys).order_by(_c.created_at.desc(), _c.id))
    return [_key(row) for row in rows]


async def count(tx: Tx) -> int:
    """How many keys exist, revoked included."""
    return int(await tx.scalar(sa.select(sa.func.count()).select_from(api_keys)))


async def revoke(tx: Tx, *, key_id: str, now: dt.datetime) -> None:
    """Mark a key revoked."""
    await tx.execute(sa.update(api_keys).where(_c.id == key_id).values(revoked_at=now))


async def mark_rotated(tx: Tx, *, key_id: str, successor: str, expires_at: dt.datetime) -> bool:
    """Point a live, unrotated key at its successor and cut its expiry; False if it was
    no longer live and unrotated."""
    result = await tx.execute(
        sa.update(api_keys)
        .where(_c.id == key_id, _c.rotated_to.is_(None), _c.revoked_at.is_(None))
        .values(rotated_to=successor, expires_at=expires_at)
    )
    return result.rowcount == 1


async def live_ending_by(tx: Tx, *, horizon: dt.datetime, born_before: dt.datetime) -> list[ApiKey]:
    """Live keys (not revoked, not rotated) that expire by ``horizon`` or were made before
    ``born_before``."""
    rows = await tx.execute(
        sa.select(api_keys).where(
            _c.revoked_at.is_(None),
            _c.rotated_to.is_(None),
            sa.or_(_c.expires_at <= horizon, _c.created_at <= born_before),
        )
    )
    return [_key(row) for row in rows]


async def live_created_by(tx: Tx, *, actor: str, now: dt.datetime) -> list[ApiKey]:
    """Live keys a person created or was shown by a rotation (``created_by``), held until
    commit on PostgreSQL."""
    statement = (
        sa.select(api_keys)
        .where(_c.created_by == actor, _c.revoked_at.is_(None), _c.expires_at > now)
        .order_by(_c.created_at, _c.id)
    )
    if not tx.sqlite:
        statement = statement.with_for_update()
    return [_key(row) for row in await tx.execute(statement)]


async def end_rotated_by(tx: Tx, *, client_id: str, end: dt.datetime) -> list[str]:
    """End the rotated keys of a client still in their grace period no later than
    ``end``; their ids."""
    result = await tx.execute(
        sa.update(api_keys)
        .where(
            sa.func.coalesce(_c.client_id, _c.id) == client_id,
            _c.rotated_to.is_not(None),
            _c.revoked_at.is_(None),
            _c.expires_at > end,
        )
        .values(expires_at=end)
        .returning(_c.id)
    )
    return sorted(result.scalars())


async def cut_expiry(tx: Tx, *, key_id: str, expires_at: dt.datetime) -> None:
    """End a key earlier."""
    await tx.execute(sa.update(api_keys).where(_c.id == key_id).values(expires_at=expires_at))


async def ensure_key(tx: Tx, key: ApiKey) -> None:
    """Insert ``key`` unless a key with its id exists (the self-service client's row)."""
    insert = (sqlite.insert if tx.sqlite else postgresql.insert)(api_keys)
    await tx.execute(
        insert.values(**key.model_dump()).on_conflict_do_nothing(index_elements=[_c.id])
    )
