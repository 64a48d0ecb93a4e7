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

SQLite runs its statements inline on the event loop (they take microseconds, and one
write lock serialises them anyway): one connection, one transaction at a time, taken in
turn under an asyncio lock. PostgreSQL runs through asyncpg, whose round trips cost the
event loop least, from SQLAlchemy's pool; the transaction is begun and ended on the
driver connection, so that fixed SQL and SQLAlchemy statements share it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import types
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, NamedTuple

import anyio
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable
from typing_extensions import TypeVar

from app.core.clock import UTC
from app.core.config import Settings
from app.core.errors import AppError
from app.core.sqlite import Checkpointer, sqlite_engine

# The row type of a fixed statement; one that returns no rows leaves it out.
R = TypeVar("R", bound=tuple[Any, ...], default=tuple[Any, ...])


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


class Json:
    """Marks a NamedTuple field of a :class:`Sql` row as a JSON column:
    ``scopes: Annotated[list[str], Json]``."""


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
    return sa.create_engine(sync_url(url), pool_pre_ping=True)


# -- fixed SQL for the hot paths --------------------------------------------------------

_PARAM = re.compile(r"(?<![:\w]):(\w+)")
# A statement that may run before its transaction has begun (Sql's read_only): one SELECT
# that takes no lock.
_PLAIN_READ = re.compile(
    r"(?is)^\s*SELECT\b(?!.*\bFOR\s+(UPDATE|SHARE|NO\s+KEY|KEY)\b)(?!.*advisory)"
)
_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's own SQLite format


def _sqlite_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _sqlite_json(text: Any) -> Any:
    return orjson.loads(text) if isinstance(text, str | bytes) else text


def _optional(convert: typing.Callable[[Any], Any]) -> typing.Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _field_decoder(annotation: Any, sqlite: bool) -> typing.Callable[[Any], Any] | None:
    """How a column arrives from the driver and must be turned into the field's type."""
    json = False
    if typing.get_origin(annotation) is typing.Annotated:
        base, *marks = typing.get_args(annotation)
        json = Json in marks
        annotation = base
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    decode: typing.Callable[[Any], Any] | None = None
    if json:
        decode = _sqlite_json if sqlite else None  # asyncpg decodes JSON itself
    elif annotation is dt.datetime:
        # Stored as naive-UTC text on SQLite; asyncpg returns aware datetimes.
        decode = _sqlite_time if sqlite else None
    elif annotation is bool:
        decode = bool if sqlite else None
    if decode is None:
        return None
    return _optional(decode) if optional else decode


class Sql(Generic[R]):
    """A fixed statement of a hot path, written once with ``:name`` parameters.

    ``row`` is the NamedTuple its rows become, in the statement's column order. Columns
    are decoded by the field types: ``datetime`` (aware UTC), ``bool``, and
    ``Annotated[..., Json]``. ``read_only`` marks one SELECT that locks nothing, which
    may run before its unit's transaction has begun (see :class:`Tx`).
    """

    def __init__(self, text: str, row: type[R] | None = None, *, read_only: bool = False) -> None:
        if read_only and not _PLAIN_READ.match(text):
            raise ValueError("read_only is for a plain SELECT that locks nothing")
        self.text = text
        self.row = row
        self.read_only = read_only
        names = _PARAM.findall(text)
        # asyncpg numbers its parameters: each name once, in order of appearance.
        self.names = tuple(dict.fromkeys(names))
        index = {name: i + 1 for i, name in enumerate(self.names)}
        self.postgres = _PARAM.sub(lambda m: f"${index[m.group(1)]}", text)
        self._decoders: dict[bool, tuple[typing.Callable[[Any], Any] | None, ...]] = {}

    def decoders(self, sqlite: bool) -> tuple[typing.Callable[[Any], Any] | None, ...]:
        """One decoder (or None) per column, for a driver."""
        found = self._decoders.get(sqlite)
        if found is None:
            hints = typing.get_type_hints(self.row, include_extras=True) if self.row else {}
            fields: Sequence[str] = getattr(self.row, "_fields", ())
            found = tuple(_field_decoder(hints[name], sqlite) for name in fields)
            self._decoders[sqlite] = found
        return found

    def rows(self, fetched: Iterable[Sequence[Any]], *, sqlite: bool) -> list[R]:
        """Driver rows as the statement's row type."""
        row = self.row
        if row is None:
            raise TypeError("this statement returns no rows")
        make = typing.cast(Any, row)._make
        decoders = self.decoders(sqlite)
        if not any(decoders):
            return [make(values) for values in fetched]
        out = []
        for values in fetched:
            out.append(
                make(
                    value if decode is None else decode(value)
                    for decode, value in zip(decoders, values, strict=True)
                )
            )
        return out


def _bind_sqlite(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused; use an aware UTC time")
        value = value.astimezone(UTC)
        return _SQLITE_TIME % (
            value.year, value.month, value.day,
            value.hour, value.minute, value.second, value.microsecond,
        )  # fmt: skip
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value).decode()
    return value


def _bind_postgres(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        raise ValueError("naive datetimes are refused; use an aware UTC time")
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()  # JSON travels as text (SQLAlchemy's codec)
    return value


def lock_key(name: str) -> int:
    """The 64-bit advisory-lock key of a logical resource name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# -- the unit of work -------------------------------------------------------------------


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
    _finished: bool = False

    @property
    def sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.dialect == "sqlite"

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this transaction has committed (never if it rolls back):
        for what must only happen once the writes are durable, such as waking a worker."""
        self._after_commit.append(callback)

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

    async def _commit(self) -> None:
        raise NotImplementedError

    async def _rollback(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


class _SqliteTx(Tx):
    dialect = "sqlite"

    def __init__(self, db: Database) -> None:
        self._db = db
        self._after_commit = []
        self._conn: sa.Connection | None = None
        self._raw: Any = None

    async def _begin(self) -> sa.Connection:
        if self._conn is None:
            await self._db._lock.acquire()
            try:
                conn = self._db._own_connection()
                raw: Any = conn.connection.driver_connection
                # Begun on the driver connection: SQLAlchemy's begin costs more than a hot
                # path's statement. A SQLAlchemy statement that runs later joins it
                # (app.core.sqlite's begin hook sees it open); _commit and _rollback end
                # it through SQLAlchemy then, so that its view of the connection stays true.
                raw.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._db._lock.release()
                raise
            self._conn, self._raw = conn, raw
        return self._conn

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        self._next_statement()
        conn = await self._begin()
        return conn.execute(statement, dict(params) if params is not None else None)

    async def fetch(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
        self._next_statement()
        await self._begin()
        cursor = self._raw.execute(sql.text, _sqlite_params(params))
        try:
            return sql.rows(cursor.fetchall(), sqlite=True)
        finally:
            cursor.close()

    async def run(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        self._next_statement()
        await self._begin()
        cursor = self._raw.execute(sql.text, _sqlite_params(params))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    async def fetch_final(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
        rows = await self.fetch(sql, params)
        self._finished = True
        return rows

    async def run_final(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        changed = await self.run(sql, params)
        self._finished = True
        return changed

    async def run_many(self, sql: Sql[Any], rows: Sequence[Mapping[str, Any]]) -> None:
        self._next_statement()
        if not rows:
            return
        await self._begin()
        cursor = self._raw.executemany(sql.text, [_sqlite_params(row) for row in rows])
        cursor.close()

    async def _commit(self) -> None:
        if self._conn is not None:
            if self._conn.in_transaction():
                self._conn.commit()
            else:
                self._raw.commit()

    async def _rollback(self) -> None:
        if self._conn is not None:
            if self._conn.in_transaction():
                self._conn.rollback()
            else:
                self._raw.rollback()

    async def _close(self) -> None:
        if self._conn is not None:
            try:
                if self._raw.in_transaction:  # a commit that failed: never leave it open
                    await self._rollback()
            finally:
                self._conn = self._raw = None
                self._db._lock.release()


_PLAIN = frozenset({str, int, bytes, float, bool, type(None)})


def _sqlite_params(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # Runs for every statement of the hot paths: only what the driver cannot take as it
    # is (instants, JSON) is converted, and the mapping is copied only then.
    if not params:
        return {}
    out: dict[str, Any] | None = None
    for key, value in params.items():
        if type(value) in _PLAIN:
            continue
        if out is None:
            out = dict(params)
        out[key] = _bind_sqlite(value)
    return params if out is None else out


class _PostgresTx(Tx):
    dialect = "postgresql"

    def __init__(self, db: Database) -> None:
        self._db = db
        self._after_commit = []
        self._conn: AsyncConnection | None = None
        self._raw: Any = None
        self._trans: Any = None

    async def _connection(self) -> Any:
        """The asyncpg connection, taken from the pool at the unit's first statement."""
        if self._conn is None:
            conn = await self._db._engine_async().connect()
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
        records = await raw.fetch(sql.postgres, *_postgres_args(sql, params))
        return sql.rows(records, sqlite=False)

    async def run(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        raw = await self._for(sql)
        return _rowcount(await raw.execute(sql.postgres, *_postgres_args(sql, params)))

    async def fetch_final(self, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
        self._next_statement()
        raw = await self._connection()  # in the transaction if one was begun, else on its own
        records = await raw.fetch(sql.postgres, *_postgres_args(sql, params))
        self._finished = True
        return sql.rows(records, sqlite=False)

    async def run_final(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        self._next_statement()
        raw = await self._connection()
        changed = _rowcount(await raw.execute(sql.postgres, *_postgres_args(sql, params)))
        self._finished = True
        return changed

    async def run_many(self, sql: Sql[Any], rows: Sequence[Mapping[str, Any]]) -> None:
        self._next_statement()
        if not rows:
            return
        raw = await self._begin()
        await raw.executemany(sql.postgres, [_postgres_args(sql, row) for row in rows])

    async def lock(self, name: str) -> None:
        await self.run(_ADVISORY_LOCK, {"key": lock_key(name)})

    async def _commit(self) -> None:
        if self._trans is not None:
            await self._trans.commit()

    async def _rollback(self) -> None:
        if self._trans is not None and not self._raw.is_closed() and self._raw.is_in_transaction():
            await self._trans.rollback()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._raw.is_closed() or self._raw.is_in_transaction():
                await conn.invalidate()  # never hand a broken or busy connection back
        finally:
            self._raw = self._trans = None
            await conn.close()


_ADVISORY_LOCK = Sql("SELECT pg_advisory_xact_lock(:key)")


def _rowcount(status: str) -> int:
    # asyncpg answers a statement with its command tag, "UPDATE 3".
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _postgres_args(sql: Sql[Any], params: Mapping[str, Any] | None) -> list[Any]:
    if not sql.names:
        return []
    if params is None:
        raise ValueError("this statement needs parameters")
    return [_bind_postgres(params[name]) for name in sql.names]


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
        self._checkpointer: Checkpointer | None = None
        # SQLite: the loop's transactions, one at a time on one connection. asyncio
        # binds the lock to the running loop at its first use.
        self._lock = asyncio.Lock()

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
        if self._own is None:
            engine = self._engine_sync()
            self._own = engine.connect()
            self._checkpointer = Checkpointer(engine)
            self._checkpointer.start(self._own.connection.driver_connection)
        return self._own

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One unit of work: commit when the block ends, roll back when it raises.

        A refusal that must still be recorded (an :class:`AppError` with ``commit``, such
        as a wrong code that counts as an attempt) commits before it propagates.
        """
        tx: Tx = _SqliteTx(self) if self.sqlite else _PostgresTx(self)
        try:
            try:
                yield tx
            except AppError as exc:
                if exc.commit:
                    await tx._commit()
                else:
                    await tx._rollback()
                raise
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await tx._rollback()
                raise
            await tx._commit()
        finally:
            with anyio.CancelScope(shield=True):
                await tx._close()
        for callback in tx._after_commit:
            callback()

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
            records = await raw.fetch(sql.postgres, *_postgres_args(sql, params))
        return sql.rows(records, sqlite=False)

    async def run_atomic(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        """Run one fixed statement that returns no rows as a transaction of its own; how
        many rows it changed (see :meth:`fetch_atomic`)."""
        if self.sqlite:
            async with self.transaction() as tx:
                return await tx.run(sql, params)
        async with self._driver() as raw:
            return _rowcount(await raw.execute(sql.postgres, *_postgres_args(sql, params)))

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection outside any transaction; one that broke is thrown
        away rather than handed back to the pool."""
        conn = await self._engine_async().connect()
        raw: Any = None
        try:
            raw = (await conn.get_raw_connection()).driver_connection
            yield raw
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    if raw is None or raw.is_closed() or raw.is_in_transaction():
                        await conn.invalidate()
                finally:
                    await conn.close()

    async def checkpoint(self) -> bool:
        """SQLite: copy the write-ahead log into the database file and truncate the log
        to nothing, so no older copy of an erased page survives in it (PostgreSQL: a
        no-op). False when a reader kept the log from being emptied."""
        if not self.sqlite:
            return True
        async with self._lock:
            # On the driver's connection: SQLAlchemy's would begin a transaction first,
            # and a checkpoint inside one cannot empty the log.
            raw: Any = self._own_connection().connection.driver_connection
            cursor = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            try:
                busy = cursor.fetchone()[0]
            finally:
                cursor.close()
        return busy == 0

    def pool_status(self) -> dict[str, int]:
        """The PostgreSQL pool's size, connections in use and overflow ({} on SQLite)."""
        if self._async is None:
            return {}
        pool: Any = self._async.pool
        return {"size": pool.size(), "checked_out": pool.checkedout(), "overflow": pool.overflow()}

    async def dispose(self) -> None:
        """Close every connection (at shutdown)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._own is not None:
            self._own.close()
            self._own = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None
        if self._async is not None:
            await self._async.dispose()
            self._async = None
