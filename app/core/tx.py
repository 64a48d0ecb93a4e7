"""The unit of work's interface: what services and repositories call on a transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import CursorResult
from sqlalchemy.sql.base import Executable

from app.core.sql import R, Sql


class Tx:
    """One transaction, begun when it is first needed and ended by :meth:`Database.transaction`.

    Services take it as their first argument and never commit: the request's unit of
    work (app.core.deps.TxDep) commits after the endpoint returns, or rolls back.

    On PostgreSQL each round trip costs more than a hot path's statement, so the
    transaction begins only when something needs it. A ``read_only`` :class:`Sql` (one
    SELECT that locks nothing) that comes first runs without BEGIN: under READ
    COMMITTED every statement sees the latest commits, in a transaction or not. And a
    unit whose only write is its *final* statement (:meth:`fetch_final`,
    :meth:`run_final`) sends neither BEGIN nor COMMIT: one statement is atomic by
    itself. Nothing may run after the final statement; once it ran alone it cannot be
    rolled back, so a service raises after it only to report what it did (a refusal the
    statement decided). SQLite runs everything in one transaction, as ever.
    """

    dialect: str
    _after_commit: list[Callable[[], None]]
    _kept_if_refused: list[tuple[Sql[Any], Mapping[str, Any]]]
    _finished: bool = False
    # Ended by a cancellation or an unexpected error: a statement may still be in flight
    # on its connection (a BEGIN sent, its answer not read), so the connection is not
    # handed to another unit.
    _interrupted: bool = False

    @property
    def sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.dialect == "sqlite"

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this transaction has committed (never if it rolls back):
        for what must only happen once the writes are durable, such as waking a worker."""
        self._after_commit.append(callback)

    def keep_if_refused(self, sql: Sql[Any], params: Mapping[str, Any]) -> None:
        """Run ``sql`` again, as a transaction of its own, if a refusal (an AppError, or
        the framework's refusal of the input) rolls this unit back: for a record that
        stands whatever the request's answer (an API key's last use, which a probe with a
        leaked key must leave too). It must be harmless to run twice."""
        self._kept_if_refused.append((sql, params))

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        """Run a SQLAlchemy Core or SQLModel statement; its rows decoded by column type."""
        raise NotImplementedError

    async def scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        return (await self.execute(statement, params)).scalar()

    async def fetch(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
        """Every row of a fixed statement, as its row type."""
        raise NotImplementedError

    async def fetch_one(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> R | None:
        """The first row of a fixed statement, or None."""
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def run(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        """Run a fixed statement that returns no rows; how many rows it changed."""
        raise NotImplementedError

    async def fetch_final(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
        """Run the unit's final statement and return its rows (see the class docstring)."""
        raise NotImplementedError

    async def run_final(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        """Run the unit's final statement, which returns no rows; how many rows it changed."""
        raise NotImplementedError

    def commit_alone(self) -> None:
        """Commit this unit as soon as it ends, before any other unit of the process runs
        (no-op on PostgreSQL, where every unit commits alone).

        For writes that another unit may report outside the database right away: a
        ledger entry, which a checkpoint signs and hands to its witness. On SQLite units
        share commits, and a later unit of the same group reads what earlier ones wrote
        before it is durable.
        """

    def _next_statement(self) -> None:
        if self._finished:
            raise RuntimeError("a statement after the unit of work's final statement")

    async def run_many(self, sql: Sql[Any], rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a fixed statement once for each parameter set (one round trip on PostgreSQL)."""
        raise NotImplementedError

    async def lock(self, name: str) -> None:
        """Serialise transactions that touch the same logical resource, across processes.

        PostgreSQL takes a transaction-scoped advisory lock on a hash of the name. SQLite
        needs nothing: every transaction holds the database's single write lock.
        """

    async def lock_all(self, names: Sequence[str]) -> None:
        """:meth:`lock` each of ``names``, in the order given (one round trip on
        PostgreSQL): holders of several locks take them in one order, so that none waits
        for another in a circle."""
        for name in names:
            await self.lock(name)

    async def _commit(self) -> None:
        raise NotImplementedError

    async def _rollback(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError
