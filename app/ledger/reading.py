"""How the long reads (a verification, an export) reach the database.

They read in keyset batches, each a short unit of its own (:func:`in_units`), so an
export streamed to a slow client never holds a connection, or SQLite's single lock,
while it waits. A batch reads a seq range fixed when the read began: entries up to
the head are append-only (the database refuses to change them), so batches read in
separate units see what one snapshot would; only the retention purge deletes, and a
read it overlaps finds the purged start gone. A read inside a request's own unit of
work (a verification answered at once) runs every batch in that unit (:func:`in_tx`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from app.core.db import Database
from app.core.tx import Tx

T = TypeVar("T")


class Reader(Protocol):
    """Runs one read (a function of a transaction) and returns what it read."""

    async def __call__(self, read: Callable[[Tx], Awaitable[T]], /) -> T: ...


def in_units(db: Database) -> Reader:
    """Each read in a short unit of work of its own."""

    async def run(read: Callable[[Tx], Awaitable[T]], /) -> T:
        async with db.transaction() as tx:
            return await read(tx)

    return run


def in_tx(tx: Tx) -> Reader:
    """Every read in one transaction the caller holds."""

    async def run(read: Callable[[Tx], Awaitable[T]], /) -> T:
        return await read(tx)

    return run
