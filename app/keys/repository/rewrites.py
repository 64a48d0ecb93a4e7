"""Rows still on an older phone or index key, found in id order and rewritten one
guarded row at a time (the package docstring says how)."""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa

from app.core.tx import Tx
from app.keys.repository.tables import PHONE_TABLES, pumping_blocks, subscribers, verifications


class Sealed(NamedTuple):
    """A row's sealed number as read: what its rewrite compares against."""

    id: str
    phone_ciphertext: bytes
    phone_key_id: str
    phone_index: str
    # Verifications only: the keyed hash of the number's prefix (None when not kept).
    prefix_index: str | None = None


class Block(NamedTuple):
    """A pumping block's prefix (kept in clear) and its blind index as read."""

    id: str
    prefix: str
    prefix_index: str


def _sealed_columns(t: sa.Table) -> list[sa.ColumnElement[object]]:
    columns = [t.c.id, t.c.phone_ciphertext, t.c.phone_key_id, t.c.phone_index]
    return columns + ([t.c.prefix_index] if "prefix_index" in t.c else [])


def _off_index_key(column: sa.ColumnElement[str], active_id: str) -> sa.ColumnElement[bool]:
    # A value is on the active index key when it starts with "<active id>:". substr with
    # an integer length works alike on SQLite and PostgreSQL (LIKE does not: on SQLite
    # it ignores case, and "_" is a wildcard in key ids).
    lead = active_id + ":"
    return sa.func.substr(column, 1, sa.cast(len(lead), sa.Integer)) != lead


def _index_filter(name: str, active_id: str) -> sa.ColumnElement[bool]:
    if name == "subscribers":
        return _off_index_key(subscribers.c.phone_index, active_id)
    if name == "verifications":
        c = verifications.c
        return sa.or_(
            _off_index_key(c.phone_index, active_id),
            sa.and_(c.prefix_index.is_not(None), _off_index_key(c.prefix_index, active_id)),
        )
    if name == "pumping_blocks":
        return _off_index_key(pumping_blocks.c.prefix_index, active_id)
    raise ValueError(f"no blind index in table {name!r}")


# -- the phone-encryption key ----------------------------------------------------------


async def phone_batch(
    tx: Tx, *, table: str, active_id: str, after: str, limit: int
) -> list[Sealed]:
    """Up to ``limit`` rows of ``table`` whose number is not under the active phone key."""
    t = PHONE_TABLES[table]
    statement = (
        sa.select(*_sealed_columns(t))
        .where(t.c.id > after, t.c.phone_key_id != active_id)
        .order_by(t.c.id)
        .limit(limit)
    )
    return [Sealed(**row._mapping) for row in await tx.execute(statement)]


async def phone_remaining(tx: Tx, *, table: str, active_id: str) -> int:
    """Rows of ``table`` whose number is not under the active phone key."""
    t = PHONE_TABLES[table]
    statement = sa.select(sa.func.count()).select_from(t).where(t.c.phone_key_id != active_id)
    return int(await tx.scalar(statement))


async def rewrite_verification_phone(
    tx: Tx, *, row: Sealed, ciphertext: bytes, key_id: str
) -> bool:
    """Store a verification's number re-encrypted, unless the row changed since read."""
    c = verifications.c
    result = await tx.execute(
        sa.update(verifications)
        .where(
            c.id == row.id,
            c.phone_key_id == row.phone_key_id,
            c.phone_ciphertext == row.phone_ciphertext,
        )
        .values(phone_ciphertext=ciphertext, phone_key_id=key_id)
    )
    return result.rowcount == 1


async def rewrite_subscriber(
    tx: Tx, *, row: Sealed, phone_index: str, ciphertext: bytes, key_id: str
) -> bool:
    """Store a subscriber's number (and index) anew, unless the row changed since read.

    The ciphertext's associated data is the index, so both change together. A new index
    another subscriber already holds is not taken (the row is left as it was).
    """
    c = subscribers.c
    guards = [
        c.id == row.id,
        c.phone_index == row.phone_index,
        c.phone_key_id == row.phone_key_id,
        c.phone_ciphertext == row.phone_ciphertext,
    ]
    if phone_index != row.phone_index:
        holder = subscribers.alias("holder")
        guards.append(~sa.exists().where(holder.c.phone_index == phone_index))
    result = await tx.execute(
        sa.update(subscribers)
        .where(*guards)
        .values(phone_index=phone_index, phone_ciphertext=ciphertext, phone_key_id=key_id)
    )
    return result.rowcount == 1


# -- the blind-index key ---------------------------------------------------------------


async def index_batch(
    tx: Tx, *, table: str, active_id: str, after: str, limit: int
) -> list[Sealed]:
    """Up to ``limit`` subscribers or verifications with a blind index not made with the
    active key."""
    t = PHONE_TABLES[table]
    statement = (
        sa.select(*_sealed_columns(t))
        .where(t.c.id > after, _index_filter(table, active_id))
        .order_by(t.c.id)
        .limit(limit)
    )
    return [Sealed(**row._mapping) for row in await tx.execute(statement)]


async def block_batch(tx: Tx, *, active_id: str, after: str, limit: int) -> list[Block]:
    """Up to ``limit`` pumping blocks whose prefix index was not made with the active key."""
    c = pumping_blocks.c
    statement = (
        sa.select(c.id, c.prefix, c.prefix_index)
        .where(c.id > after, _index_filter("pumping_blocks", active_id))
        .order_by(c.id)
        .limit(limit)
    )
    return [Block(**row._mapping) for row in await tx.execute(statement)]


async def index_remaining(tx: Tx, *, table: str, active_id: str) -> int:
    """Rows of ``table`` with a blind index not made with the active key."""
    t = {**PHONE_TABLES, "pumping_blocks": pumping_blocks}[table]
    statement = sa.select(sa.func.count()).select_from(t).where(_index_filter(table, active_id))
    return int(await tx.scalar(statement))


async def subscriber_holding(tx: Tx, *, phone_index: str) -> str | None:
    """The subscriber that already holds this blind index, if any."""
    c = subscribers.c
    found: str | None = await tx.scalar(sa.select(c.id).where(c.phone_index == phone_index))
    return found


async def reindex_verification(
    tx: Tx, *, row: Sealed, phone_index: str, prefix_index: str | None
) -> bool:
    """Store a verification's recomputed indexes, unless its index changed since read."""
    c = verifications.c
    result = await tx.execute(
        sa.update(verifications)
        .where(c.id == row.id, c.phone_index == row.phone_index)
        .values(phone_index=phone_index, prefix_index=prefix_index)
    )
    return result.rowcount == 1


async def reindex_block(tx: Tx, *, row: Block, prefix_index: str) -> bool:
    """Store a pumping block's recomputed prefix index, unless it changed since read."""
    c = pumping_blocks.c
    result = await tx.execute(
        sa.update(pumping_blocks)
        .where(c.id == row.id, c.prefix_index == row.prefix_index)
        .values(prefix_index=prefix_index)
    )
    return result.rowcount == 1
