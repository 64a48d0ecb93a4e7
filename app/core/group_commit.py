"""SQLite's group commit: the process's units take its one connection in turn and
share commits.

A COMMIT writes every page its transaction changed to the write-ahead log, and requests
that arrive together change many of the same pages, so one COMMIT for the group instead
of one each took 13-15 % off a start's time and 17-20 % off a check's
(docs/benchmark.md). Every unit still runs exactly once: a unit never retries, and a
commit that fails fails every unit of its group.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("smsreg.db")


class GroupRolledBack(RuntimeError):
    """SQLite ended a group's shared transaction under one of its units (an I/O error,
    a full disk, an interrupt inside a statement): every unit of the group fails."""


class Turns:
    """The process's units take its one SQLite connection in turn, and share commits.

    A unit holds the connection (and SQLite's write lock) from its first statement to
    its end, each in a savepoint of a transaction they share, begun IMMEDIATE. At its
    end a unit does not commit: it releases its savepoint (or rolls back to it), hands
    the connection on, and waits. A flusher, a task queued when the group formed,
    commits once the units that were ready meanwhile have had their turns, so requests
    that arrive together write the pages they share (an index's last page, the audit
    log's) to the log once. Every unit runs once; none answers before the commit that
    holds what it wrote, or what it read from units before it in its group; if that
    commit fails, or SQLite rolls the shared transaction back, every unit of the group
    fails with it. Units take turns first come, first served.
    """

    LIMIT = 32
    """Units that keep their writes in one group at most: the one that reaches it
    commits the group at once."""

    def __init__(self, connection: Callable[[], sa.Connection]) -> None:
        self.connection = connection
        self._lock = asyncio.Lock()  # bound to the running loop at its first wait
        self._open = False  # a unit began the shared transaction; no commit ended it yet
        self._members = 0
        self._committed: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def take(self) -> None:
        """Wait for a turn on the connection."""
        await self._lock.acquire()

    def began(self) -> None:
        """A unit is in the shared transaction (with the turn held)."""
        self._open = True

    async def leave(
        self, *, keep: bool, alone: bool = False, on_commit: list[Callable[[], None]]
    ) -> None:
        """End a turn; ``keep`` when the unit's writes stay. Returns once the group's
        commit holds them (at once if nothing waits for a commit). With ``alone`` the
        group is committed now, this unit with it, before any other unit runs.

        A unit cancelled while it waits leaves ``on_commit`` to run when the group
        commits: its writes are in the group and will be durable all the same."""
        if keep:
            self._members += 1
        if (keep or self._committed is not None) and self._members < self.LIMIT and not alone:
            if self._committed is None:
                self._committed = asyncio.get_running_loop().create_future()
            committed = self._committed
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.get_running_loop().create_task(self._flush_later())
            self._lock.release()
            try:
                await asyncio.shield(committed)
            except asyncio.CancelledError:
                if keep and on_commit:
                    committed.add_done_callback(functools.partial(_when_committed, [*on_commit]))
                    on_commit.clear()
                raise
            return
        try:
            self.flush()
        finally:
            self._lock.release()

    def rolled_back(self) -> None:
        """SQLite ended the shared transaction: the group's units fail."""
        committed, self._committed, self._members = self._committed, None, 0
        self._open = False
        if committed is not None:
            committed.set_exception(GroupRolledBack("the shared transaction was rolled back"))
            committed.exception()  # retrieved: the units waiting raise it

    def flush(self) -> None:
        """Commit the shared transaction, if one is open (with the turn held)."""
        committed, self._committed, self._members = self._committed, None, 0
        if not self._open:
            return  # nothing began since the last commit (and no connection is needed)
        self._open = False
        conn = self.connection()
        raw: Any = conn.connection.driver_connection
        try:
            if raw.in_transaction:
                # Once a SQLAlchemy statement joined the transaction, SQLAlchemy ends it,
                # so that its view of the connection stays true.
                owner: Any = conn if conn.in_transaction() else raw
                try:
                    owner.commit()
                except BaseException:
                    # A constraint checked at COMMIT failed: never leave the group open.
                    if conn.in_transaction():
                        conn.rollback()
                    if raw.in_transaction:
                        raw.rollback()
                    raise
            elif committed is not None:
                raise GroupRolledBack("the shared transaction was rolled back")
        except BaseException as exc:
            if committed is not None:
                committed.set_exception(exc)
                committed.exception()
            raise
        if committed is not None:
            committed.set_result(None)

    async def _flush_later(self) -> None:
        await self.take()
        self._flusher = None  # a group that forms from now on gets its own
        try:
            self.flush()
        except Exception as exc:  # the group's units raise it, each to its caller
            log.warning("a group commit failed", extra={"error": type(exc).__name__})
        finally:
            self._lock.release()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[Any]:
        """A turn outside any unit, on the driver connection (a PRAGMA); what the units
        before it wrote is committed first (a failure of that commit is theirs to raise,
        not this turn's)."""
        await self.take()
        try:
            try:
                self.flush()
            except Exception as exc:
                log.warning("a group commit failed", extra={"error": type(exc).__name__})
            yield self.connection().connection.driver_connection
        finally:
            self._lock.release()


def _when_committed(callbacks: list[Callable[[], None]], committed: asyncio.Future[None]) -> None:
    if not committed.cancelled() and committed.exception() is None:
        for callback in callbacks:
            callback()
