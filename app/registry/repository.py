"""Every query on the registry: subscribers, the purposes they were verified for, and the
access log.

Finding and moving a number's subscriber run on a verification's path and use fixed SQL
(see app.core.db.Sql); the rest are SQLAlchemy Core statements on the table classes.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa

from app.core.sql import Sql, in_chunks
from app.core.tx import Tx
from app.models.access_log import AccessLogEntry
from app.models.subscriber import Subscriber, SubscriberPurpose
from app.models.types import table

subscribers = table(Subscriber)
purposes = table(SubscriberPurpose)
access_log = table(AccessLogEntry)


class _Id(NamedTuple):
    id: str


@functools.cache
def _find_sql(n: int) -> Sql[_Id]:
    if n == 1:
        return Sql("SELECT id FROM subscribers WHERE phone_index = :i0", _Id)
    marks = ", ".join(f":i{i}" for i in range(n))
    # Oldest first: should a race ever have made two, the older subscriber is the one.
    return Sql(
        f"SELECT id FROM subscribers WHERE phone_index IN ({marks}) "  # noqa: S608 (fixed marks)
        "ORDER BY created_at, id LIMIT 1",
        _Id,
    )


async def find_id(tx: Tx, *, phone_index: str | Sequence[str]) -> str | None:
    """The subscriber id for a number's blind index, if registered.

    Given every index of the number (``Keys.blind_indexes``), it also finds a subscriber
    an index-key rotation has not re-indexed yet.
    """
    indexes = [phone_index] if isinstance(phone_index, str) else list(phone_index)
    found = await tx.fetch_one(
        _find_sql(len(indexes)), {f"i{i}": index for i, index in enumerate(indexes)}
    )
    return None if found is None else found.id


@functools.cache
def _move_sql(n: int) -> Sql[Any]:
    marks = ", ".join(f":o{i}" for i in range(n))
    # Only when nothing holds the new index yet (phone_index is UNIQUE), and one row at
    # most. Concurrent movers (``smsreg keys rotate index``) guard on the old index, so
    # whichever commits second finds nothing left to move.
    return Sql(
        "UPDATE subscribers SET phone_index = :phone_index, phone_ciphertext = :ciphertext, "  # noqa: S608
        "phone_key_id = :key_id WHERE id = (SELECT id FROM subscribers WHERE phone_index IN "
        f"({marks}) ORDER BY created_at, id LIMIT 1) AND NOT EXISTS "
        "(SELECT 1 FROM subscribers WHERE phone_index = :phone_index)"
    )


async def move_to_index(
    tx: Tx, *, phone_index: str, ciphertext: bytes, key_id: str, older: Sequence[str]
) -> None:
    """Move a subscriber still indexed under an older index key to ``phone_index`` (with
    ``ciphertext``, which is bound to that index), so no second subscriber is made."""
    if not older:
        return
    params: dict[str, Any] = {f"o{i}": index for i, index in enumerate(older)}
    params.update(phone_index=phone_index, ciphertext=ciphertext, key_id=key_id)
    await tx.run(_move_sql(len(older)), params)


# -- subscribers (cold paths) ------------------------------------------------------------


async def get(tx: Tx, subscriber_id: str, *, lock: bool = False) -> Subscriber | None:
    """One subscriber (its number encrypted), or None; with ``lock``, its row locked
    until the transaction ends, as a delete would lock it (PostgreSQL)."""
    statement = sa.select(subscribers).where(subscribers.c.id == subscriber_id)
    if lock:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else Subscriber(**row._mapping)


async def present(tx: Tx, subscriber_ids: Sequence[str]) -> set[str]:
    """Which of ``subscriber_ids`` exist, each row held until the transaction ends so
    that it cannot be deleted meanwhile (PostgreSQL's FOR KEY SHARE: what a row that
    refers to it takes; it waits for a delete in progress, and then does not find it)."""
    found: set[str] = set()
    for chunk in in_chunks(subscriber_ids):
        rows = await tx.execute(
            sa.select(subscribers.c.id)
            .where(subscribers.c.id.in_(chunk))
            .with_for_update(read=True, key_share=True)
        )
        found.update(row.id for row in rows)
    return found


class Sealed(NamedTuple):
    """A subscriber's number as stored: encrypted, bound to its blind index."""

    id: str
    phone_ciphertext: bytes
    phone_key_id: str
    phone_index: str


async def numbers(tx: Tx, subscriber_ids: Sequence[str]) -> dict[str, Sealed]:
    """The stored numbers of those of ``subscriber_ids`` that exist, by id (a plain row:
    the outbox reads a batch of them for every claim)."""
    if not subscriber_ids:
        return {}
    c = subscribers.c
    rows = await tx.execute(
        sa.select(c.id, c.phone_ciphertext, c.phone_key_id, c.phone_index).where(
            c.id.in_(subscriber_ids)
        )
    )
    return {
        row.id: Sealed(row.id, row.phone_ciphertext, row.phone_key_id, row.phone_index)
        for row in rows
    }


async def purposes_of(tx: Tx, subscriber_id: str) -> list[SubscriberPurpose]:
    """The purposes a subscriber's number was verified for, by purpose."""
    rows = await tx.execute(
        sa.select(purposes)
        .where(purposes.c.subscriber_id == subscriber_id)
        .order_by(purposes.c.purpose)
    )
    return [SubscriberPurpose(**row._mapping) for row in rows]


class VerifiedFor(NamedTuple):
    """A subscriber, and when its number was verified for one purpose (None: never)."""

    subscriber_id: str
    verified_at: dt.datetime | None


async def verified_for(tx: Tx, *, subscriber_id: str, purpose: str) -> VerifiedFor | None:
    """Whether a subscriber exists (None if not) and when it was verified for ``purpose``."""
    joined = subscribers.outerjoin(
        purposes,
        sa.and_(purposes.c.subscriber_id == subscribers.c.id, purposes.c.purpose == purpose),
    )
    row = (
        await tx.execute(
            sa.select(subscribers.c.id, purposes.c.verified_at)
            .select_from(joined)
            .where(subscribers.c.id == subscriber_id)
        )
    ).one_or_none()
    return None if row is None else VerifiedFor(row.id, row.verified_at)


async def verified_among(tx: Tx, subscriber_ids: Sequence[str], *, purpose: str) -> set[str]:
    """Which of ``subscriber_ids`` are verified for ``purpose``."""
    if not subscriber_ids:
        return set()
    rows = await tx.execute(
        sa.select(purposes.c.subscriber_id).where(
            purposes.c.purpose == purpose, purposes.c.subscriber_id.in_(subscriber_ids)
        )
    )
    return {row.subscriber_id for row in rows}


async def verified_after(tx: Tx, *, purpose: str, after: str, limit: int) -> list[str]:
    """The next ``limit`` subscriber ids verified for ``purpose`` after ``after``, in id
    order (keyset pages over the purpose's primary key)."""
    rows = await tx.execute(
        sa.select(purposes.c.subscriber_id)
        .where(purposes.c.purpose == purpose, purposes.c.subscriber_id > after)
        .order_by(purposes.c.subscriber_id)
        .limit(limit)
    )
    return [row.subscriber_id for row in rows]


# -- the access log ----------------------------------------------------------------------


async def insert_access(tx: Tx, entry: AccessLogEntry) -> None:
    """Append one entry to the access log (never a number)."""
    await tx.execute(sa.insert(access_log).values(entry.model_dump(exclude={"id"})))


@dataclass(frozen=True)
class AccessFilter:
    """Which access-log entries an auditor asks for (every field optional)."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    staff_id: str | None = None
    subscriber_id: str | None = None
    action: str | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        """The WHERE conditions of the filters that are set."""
        c = access_log.c
        found: list[sa.ColumnElement[bool]] = []
        if self.since is not None:
            found.append(c.accessed_at >= self.since)
        if self.until is not None:
            found.append(c.accessed_at < self.until)
        if self.staff_id is not None:
            found.append(c.staff_id == self.staff_id)
        if self.subscriber_id is not None:
            found.append(c.subscriber_id == self.subscriber_id)
        if self.action is not None:
            found.append(c.action == self.action)
        return found


async def access_page(
    tx: Tx, flt: AccessFilter, *, before_id: int | None, limit: int
) -> list[AccessLogEntry]:
    """Up to ``limit`` entries, newest first, older than ``before_id`` (keyset pages)."""
    conditions = flt.conditions()
    if before_id is not None:
        conditions.append(access_log.c.id < before_id)
    rows = await tx.execute(
        sa.select(access_log).where(*conditions).order_by(access_log.c.id.desc()).limit(limit)
    )
    return [AccessLogEntry(**row._mapping) for row in rows]


async def access_batch(
    tx: Tx, flt: AccessFilter, *, after_id: int, upto_id: int, limit: int
) -> list[AccessLogEntry]:
    """Up to ``limit`` entries in id order after ``after_id`` and at most ``upto_id``."""
    rows = await tx.execute(
        sa.select(access_log)
        .where(*flt.conditions(), access_log.c.id > after_id, access_log.c.id <= upto_id)
        .order_by(access_log.c.id)
        .limit(limit)
    )
    return [AccessLogEntry(**row._mapping) for row in rows]


async def last_access_id(tx: Tx) -> int:
    """The newest access-log entry's id (0 when empty): where an export stops."""
    return int(await tx.scalar(sa.select(sa.func.coalesce(sa.func.max(access_log.c.id), 0))))


async def contacted(tx: Tx, subscriber_ids: Sequence[str], *, at: dt.datetime) -> None:
    """Record a redemption or campaign message at ``at`` on each subscriber."""
    c = subscribers.c
    await tx.execute(
        sa.update(subscribers).where(c.id.in_(subscriber_ids)).values(last_contact_at=at)
    )


# -- the subject's own changes ----------------------------------------------------------


async def drop_purpose(tx: Tx, *, subscriber_id: str, purpose: str) -> bool:
    """Remove one purpose a subscriber was verified for; False if it had none."""
    c = purposes.c
    done = await tx.execute(
        sa.delete(purposes).where(c.subscriber_id == subscriber_id, c.purpose == purpose)
    )
    return bool(done.rowcount)


async def renumber(
    tx: Tx, *, subscriber_id: str, phone_index: str, ciphertext: bytes, key_id: str
) -> bool:
    """Give a subscriber another number (already verified); False if it is gone, or if
    the number is another subscriber's (registered since it was looked up: the unique
    index refused it, which spoils the transaction on PostgreSQL: roll it back)."""
    c = subscribers.c
    try:
        done = await tx.execute(
            sa.update(subscribers)
            .where(c.id == subscriber_id)
            .values(phone_index=phone_index, phone_ciphertext=ciphertext, phone_key_id=key_id)
        )
    except sa.exc.IntegrityError:
        return False
    return bool(done.rowcount)
