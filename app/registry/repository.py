"""Queries on the registry of verified numbers."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from app.core.db import Sql, Tx
from app.models.access_log import AccessLogEntry
from app.models.types import table


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


async def insert_access(tx: Tx, entry: AccessLogEntry) -> None:
    """Append one entry to the access log (never a number)."""
    await tx.execute(sa.insert(table(AccessLogEntry)).values(entry.model_dump(exclude={"id"})))
