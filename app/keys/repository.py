"""Every query of the key rings: rows still on an older key, rewritten one guarded row at a time.

A key ring is a storage concern that cuts across areas: the phone key seals numbers in
the registry and in verifications (and staff TOTP secrets), the index key makes the
blind indexes of subscribers, verifications and pumping blocks, the token key hashes
API keys and staff sessions. Finding what still needs a key, and rewriting it under
the active one, reads and writes those tables as stored bytes and key ids, whatever
the owning area does with them; so those queries are the key ring's own and live here,
not in the areas' repositories.

Every rewrite is a compare-and-set: ``WHERE id = :id`` and the old key id (and, where
the associated data depends on it, the old index) as read. A row a running service
changed in between is left alone (it was written under the active key anyway), never
overwritten with stale data. Rows are walked in id order after a cursor, so a row that
cannot be rewritten is passed over, not retried for ever; what is left after a run is
still "every row not on the active key", which is what the next run picks up.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import sqlalchemy as sa

from app.core.tx import Tx
from app.models.api_key import ApiKey
from app.models.pumping import PumpingBlock
from app.models.staff import StaffSession
from app.models.staff_mfa import StaffTotp
from app.models.subject import SubjectSession
from app.models.subscriber import Subscriber
from app.models.types import table
from app.models.verification import Verification

subscribers = table(Subscriber)
verifications = table(Verification)
pumping_blocks = table(PumpingBlock)
staff_totp = table(StaffTotp)
# Tables whose rows hold a token's keyed hash, counted while live by `keys status`.
TOKEN_TABLES = tuple(table(model) for model in (ApiKey, StaffSession, SubjectSession))

# The tables whose numbers are sealed with the phone key and rewritten by a rotation.
PHONE_TABLES = {"subscribers": subscribers, "verifications": verifications}


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


class Usage(NamedTuple):
    """Rows (of one table and column) that still need one key id."""

    what: str
    key_id: str
    rows: int


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


# -- what still uses each key (``smsreg keys status``) ---------------------------------


def _key_of(tx: Tx, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    # The key id is the part of a blind index before the first ":".
    if tx.sqlite:
        return sa.func.substr(column, 1, sa.func.instr(column, ":") - 1)
    return sa.func.split_part(column, ":", 1)


def _usage_statements(
    tx: Tx, *, family: str, now: dt.datetime
) -> list[tuple[str, sa.Select[str, int]]]:
    def per_key(
        what: str, key: sa.ColumnElement[str], *where: sa.ColumnElement[bool]
    ) -> tuple[str, sa.Select[str, int]]:
        statement = sa.select(key.label("key_id"), sa.func.count().label("rows"))
        return what, statement.where(*where).group_by(key)

    if family == "phone":
        return [
            per_key(f"{name}.phone_key_id", t.c.phone_key_id) for name, t in PHONE_TABLES.items()
        ] + [
            # Staff TOTP secrets are sealed with the phone ring too; `smsreg credentials
            # rotate --due` re-encrypts them.
            per_key("staff_totp.secret_key_id", staff_totp.c.secret_key_id),
        ]
    if family == "index":
        return [
            per_key(f"{t.name}.{column.name}", _key_of(tx, column), column.is_not(None))
            for t, column in (
                (subscribers, subscribers.c.phone_index),
                (verifications, verifications.c.phone_index),
                (verifications, verifications.c.prefix_index),
                (pumping_blocks, pumping_blocks.c.prefix_index),
            )
        ]
    if family == "code":
        c = verifications.c
        live = (c.status == "pending", c.expires_at > now)
        return [per_key("verifications.code_key_id (live)", c.code_key_id, *live)]
    if family == "token":
        return [
            per_key(
                f"{t.name}.token_key_id (live)",
                t.c.token_key_id,
                t.c.revoked_at.is_(None),
                t.c.expires_at > now,
            )
            for t in TOKEN_TABLES
        ]
    raise ValueError(f"unknown key family {family!r}")


async def usage(tx: Tx, *, family: str, now: dt.datetime) -> list[Usage]:
    """(what, key_id, rows) for every key id rows of one family name, active or not.

    ``what`` names the table and column. Only rows that still need the key count:
    for codes the live verifications, for tokens the live API keys and sessions.
    """
    out: list[Usage] = []
    for what, statement in _usage_statements(tx, family=family, now=now):
        for row in await tx.execute(statement):
            key_id, rows = tuple(row)
            out.append(Usage(what=what, key_id=key_id, rows=int(rows)))
    return out
