"""PostgreSQL's unit of work: asyncpg connections from SQLAlchemy's pool, the transaction
begun and ended on the driver connection, so fixed SQL and SQLAlchemy statements share it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import Pool
from sqlalchemy.sql.base import Executable

from app.core.sql import R, Sql, lock_key, postgres_args, rowcount
from app.core.tx import Tx


class PostgresTx(Tx):
    """A unit on a pooled asyncpg connection, begun only when it must be (see Tx)."""

    dialect = "postgresql"

    def __init__(
        self, engine: Callable[[], AsyncEngine], lost: Callable[[Pool], Awaitable[None]]
    ) -> None:
        self._engine = engine
        self._lost = lost
        self._after_commit = []
        self._kept_if_refused = []
        self._conn: AsyncConnection | None = None
        self._raw: Any = None
        self._trans: Any = None
        self._pool: Pool | None = None

    async def _connection(self) -> Any:
        """The asyncpg connection, taken from the pool at the unit's first statement."""
        if self._conn is None:
            engine = self._engine()
            self._pool = engine.pool
            conn = await engine.connect()
            try:
                raw: Any = (await conn.get_raw_connection()).driver_connection
            except BaseException:
                await conn.invalidate()
                await conn.close()
                raise
            self._conn, self._raw = conn, raw
        return self._raw

    async def _begin(self) -> Any:
        """The connection, in the unit's transaction (begun now if it was not yet)."""
        raw = await self._connection()
        if self._trans is None:
            trans = raw.transaction()
            await trans.start()
            self._trans = trans
        return raw

    async def _for(self, sql: Sql[Any]) -> Any:
        self._next_statement()
        if sql.read_only and self._trans is None:
            return await self._connection()
        return await self._begin()

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        self._next_statement()
        await self._begin()
        if self._conn is None:  # unreachable: _begin took one
            raise RuntimeError("no connection")
        return await self._conn.execute(statement, dict(params) if params is not None else None)

    async def fetch(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
        raw = await self._for(sql)
        records = await raw.fetch(sql.postgres, *postgres_args(sql, params))
        return sql.rows(records, sqlite=False)

    async def run(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        raw = await self._for(sql)
        return rowcount(await raw.execute(sql.postgres, *postgres_args(sql, params)))

    async def fetch_final(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
        self._next_statement()
        raw = await self._connection()  # in the transaction if one was begun, else on its own
        records = await raw.fetch(sql.postgres, *postgres_args(sql, params))
        self._finished = True
        return sql.rows(records, sqlite=False)

    async def run_final(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        self._next_statement()
        raw = await self._connection()
        changed = rowcount(await raw.execute(sql.postgres, *postgres_args(sql, params)))
        self._finished = True
        return changed

    async def run_many(self, sql: Sql[Any], rows: Sequence[Mapping[str, Any]]) -> None:
        self._next_statement()
        if not rows:
            return
        raw = await self._begin()
        await raw.executemany(sql.postgres, [postgres_args(sql, row) for row in rows])

    async def lock(self, name: str) -> None:
        await self.run(_ADVISORY_LOCK, {"key": lock_key(name)})

    async def lock_all(self, names: Sequence[str]) -> None:
        if len(names) > 1:
            await self.run(_ADVISORY_LOCKS, {"keys": [lock_key(name) for name in names]})
        elif names:
            await self.lock(names[0])

    async def _commit(self) -> None:
        if self._trans is not None:
            await self._trans.commit()

    async def _rollback(self) -> None:
        if self._trans is not None and not self._raw.is_closed() and self._raw.is_in_transaction():
            await self._trans.rollback()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or self._pool is None:
            return
        raw, self._raw, self._trans = self._raw, None, None
        await give_back(conn, raw, self._pool, self._lost, interrupted=self._interrupted)


async def give_back(
    conn: AsyncConnection,
    raw: Any,
    pool: Pool,
    lost: Callable[[Pool], Awaitable[None]],
    *,
    interrupted: bool = False,
) -> None:
    """Hand a pooled connection back, or throw it away when it is broken or busy (closed,
    still in a transaction, never reached: ``raw`` None, or ``interrupted``: its unit was
    cancelled or failed, so a statement may be in flight, such as a BEGIN whose answer
    would leave the next unit's writes in a transaction nobody commits); one the server
    closed is reported to ``lost``, since the pool's idle ones are presumably closed too."""
    gone = raw is not None and raw.is_closed()
    try:
        if interrupted or raw is None or gone or raw.is_in_transaction():
            await conn.invalidate()
    finally:
        await conn.close()
    if gone:
        await lost(pool)


_ADVISORY_LOCK = Sql("SELECT pg_advisory_xact_lock(:key)")
# The keys travel as one JSON array, taken in its order (the ordinality sorts the rows
# before the lock function, which is volatile, runs on each).
_ADVISORY_LOCKS = Sql(
    "SELECT pg_advisory_xact_lock(k.value::bigint) "
    "FROM jsonb_array_elements_text(CAST(:keys AS jsonb)) WITH ORDINALITY AS k(value, n) "
    "ORDER BY k.n"
)
