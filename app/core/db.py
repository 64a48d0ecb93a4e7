"""The database: its engine, and the unit of work every request runs in.

A :class:`Tx` is one transaction. Code reaches it in two ways:

* SQLAlchemy Core and SQLModel statements (``await tx.execute(select(Model)...)``), which
  SQLAlchemy compiles for the dialect and whose rows it decodes by column type. Every
  repository uses these.
* :class:`Sql`, a fixed statement with ``:name`` parameters and a NamedTuple row type,
  run on the driver's own connection in the same transaction. Only the measured hot
  paths use it (starting and checking a verification, the send limits and the pumping
  guard, the outbox claim, API-key authentication), where SQLAlchemy's statement
  execution costs more than the SQL itself. Rows are decoded by the row type's field
  types, never by a column's name.

Each dialect's unit of work has its own module: app/core/sqlite.py (inline on the event
loop, one connection, units taken in turn and sharing commits) and
app/core/postgres.py (asyncpg, whose round trips cost the event loop least, from
SQLAlchemy's pool). :class:`Sql` is in app/core/sql.py, the interface both units share
(:class:`Tx`) in app/core/tx.py. This module holds the engines, the column type for
instants, and :class:`Database`, where every unit comes from.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import anyio
import orjson
import sqlalchemy as sa
from fastapi.exceptions import RequestValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool

from app.core.clock import UTC
from app.core.config import Settings
from app.core.errors import AppError
from app.core.group_commit import Turns
from app.core.postgres import PostgresTx, give_back
from app.core.sql import R, Sql, postgres_args, rowcount
from app.core.sqlite import SqliteTx, sqlite_engine, wait_for_lock, waits_on_loop
from app.core.tx import Tx

log = logging.getLogger("smsreg.db")


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware, on SQLite too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused; use an aware UTC time")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text: store one fixed naive-UTC format.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# -- URLs and engines -------------------------------------------------------------------


def dialect_of(url: str) -> str:
    """``sqlite`` or ``postgresql``, from a database URL."""
    name = sa.engine.make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {name!r}: use sqlite or postgresql")
    return name


def sync_url(url: str) -> str:
    """The URL for synchronous tools (Alembic, tests): psycopg on PostgreSQL."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The URL the running service uses on PostgreSQL: asyncpg."""
    parsed = sa.engine.make_url(url).set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_sync_engine(url: str, *, sqlite_cache_mb: int | None = None) -> Engine:
    """A synchronous engine for migrations and tools: SQLite (WAL, transactions begun
    IMMEDIATE, a page cache of ``sqlite_cache_mb`` if given) or PostgreSQL through
    psycopg."""
    if dialect_of(url) == "sqlite":
        return sqlite_engine(url, cache_mb=sqlite_cache_mb)
    # Every engine hides its statements' values (a sealed number, a blind index, a
    # token's hash, a reason a person typed) from errors, tracebacks and logs.
    # A server that drops packets (a host gone in a failover) is given up on after
    # CONNECT_TIMEOUT_SECONDS, not the operating system's two minutes, unless the URL
    # says otherwise (libpq's connect_timeout).
    given = sa.engine.make_url(url).query
    waits = {} if "connect_timeout" in given else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return sa.create_engine(
        sync_url(url), pool_pre_ping=True, hide_parameters=True, connect_args=waits
    )


CONNECT_TIMEOUT_SECONDS = 10


class PoolSettings(NamedTuple):
    """How many PostgreSQL connections a process holds, and how long statements may run."""

    size: int = 10
    overflow: int = 0
    timeout_seconds: float = 10.0
    statement_timeout_ms: int = 30_000
    lock_timeout_ms: int = 10_000


class Database:
    """The database of one process: where every :class:`Tx` comes from."""

    def __init__(
        self, url: str, *, pool: PoolSettings | None = None, sqlite_cache_mb: int | None = None
    ) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.pool = pool or PoolSettings()
        self.sqlite_cache_mb = sqlite_cache_mb
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._own: sa.Connection | None = None
        # SQLite: the loop's units, one at a time on one connection, sharing commits.
        self._turns = Turns(self._own_connection)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database the settings name, with their pool and timeouts."""
        return cls(
            settings.database_url,
            pool=PoolSettings(
                size=settings.db_pool_size,
                overflow=settings.db_pool_overflow,
                timeout_seconds=settings.db_pool_timeout_seconds,
                statement_timeout_ms=settings.db_statement_timeout_ms,
                lock_timeout_ms=settings.db_lock_timeout_ms,
            ),
            sqlite_cache_mb=settings.sqlite_cache_mb,
        )

    @property
    def sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.dialect == "sqlite"

    def _engine_sync(self) -> Engine:
        if self._sync is None:
            self._sync = create_sync_engine(self.url, sqlite_cache_mb=self.sqlite_cache_mb)
        return self._sync

    def _engine_async(self) -> AsyncEngine:
        if self._async is None:
            pool = self.pool
            self._async = create_async_engine(
                async_url(self.url),
                hide_parameters=True,  # as every engine: see create_sync_engine
                # The transaction is begun and ended on the driver connection (Tx), so
                # fixed SQL and SQLAlchemy statements share it; SQLAlchemy itself never
                # opens one, and a connection goes back to the pool only when idle.
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
                pool_size=pool.size,
                max_overflow=pool.overflow,
                pool_timeout=pool.timeout_seconds,
                pool_pre_ping=False,
                json_deserializer=orjson.loads,
                connect_args={
                    "server_settings": {
                        "statement_timeout": str(pool.statement_timeout_ms),
                        "lock_timeout": str(pool.lock_timeout_ms),
                        "application_name": "smsreg",
                    }
                },
            )
        return self._async

    def _own_connection(self) -> sa.Connection:
        # One connection for every inline transaction: SQLite keeps a connection's page
        # cache only while no other connection writes.
        if self._own is not None and self._own.invalidated:
            # Closed by SQLAlchemy after an interrupt inside a statement: start afresh.
            self._own.close()
            self._own = None
        if self._own is None:
            own = self._engine_sync().connect()
            # Its units wait for the write lock on the event loop (app.core.sqlite).
            waits_on_loop(own.connection.driver_connection)
            self._own = own
        return self._own

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One unit of work: commit when the block ends, roll back when it raises.

        A refusal that must still be recorded (an :class:`AppError` with ``commit``, such
        as a wrong code that counts as an attempt) commits before it propagates.
        """
        tx: Tx = (
            SqliteTx(self._turns)
            if self.sqlite
            else PostgresTx(self._engine_async, self._connection_lost)
        )
        refused = False
        try:
            try:
                yield tx
            except AppError as exc:
                if exc.commit:
                    await tx._commit()
                else:
                    await tx._rollback()
                    refused = True
                raise
            except BaseException as exc:
                # The framework's refusal of the input; not a database that does not
                # answer (trying again would only make the error answer wait) nor a bug.
                refused = isinstance(exc, RequestValidationError)
                tx._interrupted = not refused
                with anyio.CancelScope(shield=True):
                    await tx._rollback()
                raise
            await tx._commit()
        finally:
            with anyio.CancelScope(shield=True):
                await tx._close()
            if refused:
                await self._keep(tx._kept_if_refused)
        for callback in tx._after_commit:
            callback()

    async def _keep(self, statements: list[tuple[Sql[Any], Mapping[str, Any]]]) -> None:
        """The statements a unit rolled back keeps (:meth:`Tx.keep_if_refused`), each
        alone. A failure is logged, never raised: the refusal is the request's answer."""
        for sql, params in statements:
            try:
                await self.run_atomic(sql, params)
            except Exception as exc:
                log.warning(
                    "a record kept past a refusal failed", extra={"error": type(exc).__name__}
                )

    async def fetch_atomic(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
        """Run one fixed statement as a transaction of its own, and return its rows.

        A single statement is atomic by itself; on PostgreSQL this saves the BEGIN and
        COMMIT round trips that a :meth:`transaction` would add (the outbox worker writes
        each message's steps this way, one statement each).
        """
        if self.sqlite:
            async with self.transaction() as tx:
                return await tx.fetch(sql, params)
        async with self._driver() as raw:
            records = await raw.fetch(sql.postgres, *postgres_args(sql, params))
        return sql.rows(records, sqlite=False)

    async def run_atomic(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        """Run one fixed statement that returns no rows as a transaction of its own; how
        many rows it changed (see :meth:`fetch_atomic`)."""
        if self.sqlite:
            async with self.transaction() as tx:
                return await tx.run(sql, params)
        async with self._driver() as raw:
            return rowcount(await raw.execute(sql.postgres, *postgres_args(sql, params)))

    async def _connection_lost(self, pool: Pool) -> None:
        """A unit found its pooled connection closed under it: the server restarted, or
        dropped its connections (or only this one: a terminated backend). The pool's idle
        connections are presumed lost too, and closed; the engine makes a new pool in
        their place, so the next units connect afresh rather than each failing on a dead
        one in turn (the pool does not ping before each checkout: that is a round trip per
        request). Once per pool: units that lost theirs to the same event find it new."""
        if self._async is None or self._async.pool is not pool:
            return
        await self._async.dispose()

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection outside any transaction; one that broke is thrown
        away rather than handed back to the pool (a lost one: see _connection_lost)."""
        engine = self._engine_async()
        pool = engine.pool
        conn = await engine.connect()
        raw: Any = None
        done = False
        try:
            raw = (await conn.get_raw_connection()).driver_connection
            yield raw
            done = True
        finally:
            with anyio.CancelScope(shield=True):
                # Cancelled or failed, a statement may still be in flight on it.
                await give_back(conn, raw, pool, self._connection_lost, interrupted=not done)

    async def checkpoint(self, *, truncate: bool = True) -> bool:
        """SQLite: copy the write-ahead log into the database file and truncate the log
        to nothing, so no older copy of an erased page survives in it (PostgreSQL: a
        no-op). False when a reader kept the log from being emptied.

        With ``truncate=False`` (a passive checkpoint) it copies what no reader still
        needs and leaves the log's length alone; writers go on meanwhile."""
        if not self.sqlite:
            return True
        if not truncate:
            return (await self._pragma("wal_checkpoint(PASSIVE)"))[0] == 0
        # Emptying the log waits for other connections' writes and reads to end.
        done = await self._pragma("wal_checkpoint(TRUNCATE)", busy=lambda row: row[0] != 0)
        return done[0] == 0

    @asynccontextmanager
    async def manual_checkpoints(self) -> AsyncIterator[None]:
        """SQLite: for the block, this process's commits never copy the write-ahead log
        into the database file themselves, however long it grows; copying is left to
        :meth:`checkpoint` when the caller chooses. Afterwards they do again, at the
        threshold they had (SQLite's default: 1,000 pages). For a batch job: a commit's
        own copy (and its fsync) runs after the write lock is let go but inside the
        commit, so a job timing its hold on the lock counted the copy too. PostgreSQL:
        nothing changes."""
        if not self.sqlite:
            yield
            return
        (threshold,) = await self._pragma("wal_autocheckpoint")
        await self._pragma("wal_autocheckpoint=0")
        try:
            yield
        finally:
            await self._pragma(f"wal_autocheckpoint={int(threshold)}")

    async def _pragma(
        self, pragma: str, *, busy: Callable[[tuple[Any, ...]], bool] | None = None
    ) -> tuple[Any, ...]:
        """SQLite: one PRAGMA on this process's connection, between units; its first row,
        asked again while ``busy`` says another connection held it up (for as long as
        a unit waits for the write lock). On the driver's connection: SQLAlchemy's would
        begin a transaction first, and a checkpoint inside one cannot empty the log."""

        def once() -> tuple[Any, ...]:
            cursor = raw.execute(f"PRAGMA {pragma}")
            try:
                return tuple(cursor.fetchone())
            finally:
                cursor.close()

        async with self._turns.turn() as raw:
            return await wait_for_lock(once, busy=busy)

    def pool_status(self) -> dict[str, int]:
        """The PostgreSQL pool's size, connections in use and overflow ({} on SQLite)."""
        if self._async is None:
            return {}
        pool: Any = self._async.pool
        # QueuePool.overflow() counts from minus the pool's size (connections it may still
        # open before any is an overflow one): the overflow connections open are above 0.
        overflow = max(0, pool.overflow())
        return {"size": pool.size(), "checked_out": pool.checkedout(), "overflow": overflow}

    async def dispose(self) -> None:
        """Close every connection (at shutdown)."""
        if self._own is not None:
            async with self._turns.turn():  # what the last units wrote is committed
                pass
            self._own.close()
            self._own = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None
        if self._async is not None:
            await self._async.dispose()
            self._async = None
