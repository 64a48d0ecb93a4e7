"""Engine, column types and the unit of work every request runs its service call in."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import operator
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.core.clock import UTC

P = ParamSpec("P")
T = TypeVar("T")


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


def create_db_engine(url: str, *, background_checkpoint: bool = False) -> Engine:
    """An engine for SQLite (WAL, writers serialised) or PostgreSQL (psycopg 3).

    With ``background_checkpoint`` SQLite never checkpoints inside a commit; the caller
    runs :func:`checkpoint` off the event loop instead (see app.main).
    """
    if url.startswith("sqlite"):
        return _sqlite_engine(url, background_checkpoint=background_checkpoint)
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def _sqlite_engine(url: str, *, background_checkpoint: bool) -> Engine:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: transactions begin where we say (Tx, BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL survives a process crash; only a power cut may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if background_checkpoint:
            # A checkpoint syncs the file to disk (milliseconds here); inside a commit it
            # would stall the event loop, so the app runs it from a thread instead.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # For SQLAlchemy-level work (migrations, tools); Tx begins IMMEDIATE on its own.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_JSON_COLUMNS = {"scopes", "response", "details"}
_PLAIN = frozenset({str, int, bytes, float, bool, type(None)})
# Per statement: its row class, its column names, and which of them hold timestamps
# and JSON.
_PLANS: dict[str, tuple[type[Row], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"
_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def checkpoint(engine: Engine) -> tuple[int, int, int]:
    """Copy the SQLite WAL into the database file without blocking writers (PASSIVE).

    Returns SQLite's answer: (busy, frames in the WAL, frames copied so far).
    """
    raw = engine.raw_connection()
    try:
        # On the driver connection, which is in autocommit: through a SQLAlchemy
        # Connection the "begin" hook opens BEGIN IMMEDIATE first, and a checkpoint
        # inside a transaction always fails (SQLITE_LOCKED). That left the WAL growing
        # without end, and every commit paid for writing to new file blocks.
        cursor = raw.cursor()
        try:
            busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            cursor.close()
    finally:
        raw.close()
    return int(busy), int(frames), int(copied)


class Row(dict[str, Any]):
    """A result row: a dict that also allows ``row.column``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self) -> tuple[type[Row], tuple[dict[str, Any]]]:
        # A row of a statement's own class pickles as a plain Row (same values).
        return Row, (dict(self),)


@functools.lru_cache(maxsize=1024)
def row_class(names: tuple[str, ...]) -> type[Row]:
    """A Row subclass whose columns are read as attributes in C.

    ``Row.__getattr__`` only runs after the ordinary lookup failed, and that failure
    builds an AttributeError and its message first: counted, ~6% of the instructions
    of a start with its SMS went to rows read that way. A property per column finds the
    value on the first lookup, through ``operator.itemgetter``. So a column removed from
    such a row (``row.pop``) raises KeyError when read as an attribute, not
    AttributeError: read what may be gone with ``row.get``.
    """
    columns = {
        name: property(operator.itemgetter(name))
        for name in names
        if name.isidentifier() and not hasattr(Row, name)  # never hide a dict method
    }
    return type("Row", (Row,), {"__slots__": (), **columns})


class Tx:
    """One transaction on a pooled driver connection, running fixed SQL.

    Statements are written once with ``:name`` parameters. Going straight to the
    driver skips SQLAlchemy's statement building and connection events: measured,
    that took a check from ~2 ms to well under 0.5 ms.
    """

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self.sqlite = dialect == "sqlite"
        self._cursor = raw.cursor()
        self.kept = False
        # Each instant bound so far, as bound: a transaction binds the same few times
        # (its "now", the windows before it, an expiry) in most of its statements.
        self._times: dict[dt.datetime, Any] = {}
        if self.sqlite:
            # IMMEDIATE takes the write lock up front, so a read-then-write (a limit
            # check and its insert) is atomic across processes instead of failing late.
            self._cursor.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Make the transaction's writes durable."""
        if self.sqlite:
            self._cursor.execute("COMMIT")
        else:
            self.raw.commit()

    def rollback(self) -> None:
        """Undo the transaction's writes."""
        if self.sqlite:
            self._cursor.execute("ROLLBACK")
        else:
            self.raw.rollback()

    def keep(self) -> None:
        """Keep what this transaction did so far even if the rest is refused.

        A refusal (an AppError that does not commit) then rolls back only to here and
        commits the rest; a crash still rolls back everything.
        """
        self._cursor.execute("SAVEPOINT kept")
        self.kept = True

    def undo_since_kept(self) -> None:
        """Roll back to the last :meth:`keep`."""
        self._cursor.execute("ROLLBACK TO SAVEPOINT kept")

    def _sql(self, sql: str) -> str:
        return sql if self.sqlite else _pg_sql(sql)

    # Binding and reading rows run for every statement, so they touch only the values
    # that need converting (measured: the generic loops were ~10 % of a check).
    def _bind(self, params: dict[str, Any] | None) -> dict[str, Any]:
        if not params:
            return {}
        out = None
        for key, value in params.items():
            if type(value) in _PLAIN:
                continue
            if out is None:
                out = dict(params)
            if isinstance(value, dt.datetime):
                out[key] = self._timestamp(value)
            elif isinstance(value, dict | list | tuple):
                out[key] = orjson.dumps(value).decode()
        return params if out is None else out

    def _timestamp(self, value: dt.datetime) -> Any:
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused; use an aware UTC time")
        bound = self._times.get(value)
        if bound is not None:
            return bound
        bound = value if value.tzinfo is UTC else value.astimezone(UTC)
        if self.sqlite:
            # The same text SQLAlchemy writes ("YYYY-MM-DD HH:MM:SS.ffffff", naive UTC),
            # so SQL comparisons stay consistent. %-formatting is ~40% quicker than
            # isoformat(), which parses a generic format string on every call.
            bound = _SQLITE_TIME % (
                bound.year, bound.month, bound.day,
                bound.hour, bound.minute, bound.second, bound.microsecond,
            )  # fmt: skip
        self._times[value] = bound
        return bound

    def _rows(self, sql: str, fetched: list[Any]) -> list[Row]:
        plan = _PLANS.get(sql)
        if plan is None:
            names = tuple(column[0] for column in self._cursor.description)
            plan = _PLANS[sql] = (
                row_class(names),
                names,
                tuple(name for name in names if name.endswith("_at")),
                tuple(name for name in names if name in _JSON_COLUMNS),
            )
        cls, names, times, documents = plan
        rows = []
        for values in fetched:
            row = cls(zip(names, values, strict=True))
            for name in times:
                value = row[name]
                if type(value) is str:
                    row[name] = dt.datetime.fromisoformat(value + "+00:00")
            for name in documents:
                value = row[name]
                if type(value) is str:
                    row[name] = orjson.loads(value)
            if not self.sqlite:
                for name, value in row.items():
                    if isinstance(value, memoryview):
                        row[name] = bytes(value)
            rows.append(row)
        return rows

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run a statement; return the number of rows it changed."""
        self._cursor.execute(self._sql(sql), self._bind(params))
        return int(self._cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        """Run one statement for many parameter sets."""
        if rows:
            self._cursor.executemany(self._sql(sql), [self._bind(row) for row in rows])

    def one(self, sql: str, params: dict[str, Any] | None = None) -> Row | None:
        """The first row of a query, or None."""
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def all(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        """Every row of a query (fetching all also completes RETURNING on SQLite)."""
        self._cursor.execute(self._sql(sql), self._bind(params))
        return self._rows(sql, self._cursor.fetchall())

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    def close(self) -> None:
        """Release the cursor."""
        self._cursor.close()


@functools.lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


class _Member:
    """One call in a group, and what it answered."""

    __slots__ = ("args", "error", "fn", "kwargs", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.result: Any = None
        self.error: BaseException | None = None


class _Group:
    """One SQLite transaction shared by the inline calls of one turn of the event loop.

    A COMMIT costs ~6 us for every page it writes to the WAL, and calls that arrive
    together touch many of the same pages (each table's last page and time index, the
    database header): measured, a COMMIT took about a fifth of a request. So the first
    call of a turn opens the transaction, every call made before the loop comes round
    again runs in it, and one COMMIT at the end of the turn makes them durable
    together. No call answers before that COMMIT: an answer, and a refusal that must be
    recorded (AppError.commit), are only sent once they are on disk; if the COMMIT
    fails, every member fails with it.

    A call that fails after writing, with writes that must not stay, cannot be undone
    alone without a SAVEPOINT around every call, and savepoints cost more than they
    save (each page a call changes is first copied to a journal). So such a failure
    rolls the whole group back, and every member runs again in a transaction of its
    own, as if there had been no group: their first answers were never sent. Service
    functions touch nothing but the transaction (the outbox sends), so running one
    again is safe; only a log line or a metric they write is repeated. Refusals almost
    always come before any write, so this is rare.
    """

    def __init__(self, tx: Tx, loop: asyncio.AbstractEventLoop) -> None:
        self.tx = tx
        self.done: asyncio.Future[None] = loop.create_future()
        self.thread = threading.get_ident()
        self.members: list[_Member] = []
        self.replay = False

    def run(self, member: _Member) -> None:
        """Run one call in the shared transaction; flag the group if its writes must go."""
        from app.core.errors import AppError

        self.members.append(member)
        tx = self.tx
        raw = tx.raw
        tx.kept = False
        changes = raw.total_changes
        try:
            member.result = member.fn(tx, *member.args, **member.kwargs)
        except AppError as exc:
            member.error = exc
            if exc.commit:
                pass  # its writes stay (a failed code check counts)
            elif tx.kept:
                tx.undo_since_kept()  # back to what it kept (Tx.keep)
            elif raw.total_changes != changes:
                self.replay = True
        except Exception as exc:
            member.error = exc
            if raw.total_changes != changes or tx.kept:
                self.replay = True
        except BaseException:  # the process is stopping: undo everything, answer no one
            self.members.remove(member)
            self.replay = True
            raise
        if tx.kept and not self.replay:
            tx.execute("RELEASE SAVEPOINT kept")


class Database:
    """Runs a service function in one transaction: commit on success, roll back on error.

    SQLite calls take microseconds and share one write lock, so they run inline on the
    event loop (threads would only queue for that lock), on one connection the loop
    keeps for itself. PostgreSQL calls wait on the network, so they run in a worker
    thread, on pooled connections, while the loop serves other requests.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.inline = engine.dialect.name == "sqlite"
        self._held: asyncio.Event | None = None
        self._own: Any = None
        self._own_lock = threading.Lock()
        self._group: _Group | None = None

    def call(self, fn: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run fn(tx, ...) in one transaction, synchronously."""
        # The loop's calls come one at a time; a call from another thread while one is
        # running (tests, tools) takes a pooled connection instead.
        group = self._group
        if group is not None and group.thread == threading.get_ident():
            # On the loop's thread the open group holds the write lock: waiting for it
            # would wait for ever. Make it durable first.
            self._flush(group)
        if self.inline and self._own_lock.acquire(blocking=False):
            try:
                return self._unit(self._own_connection(), fn, *args, **kwargs)
            finally:
                self._own_lock.release()
        raw = self.engine.raw_connection()
        try:
            return self._unit(raw.driver_connection, fn, *args, **kwargs)
        finally:
            raw.close()  # back to the pool

    def _own_connection(self) -> Any:
        # One connection for every inline transaction, instead of one from the pool each
        # time. SQLite drops a connection's whole page cache whenever another connection
        # wrote since its last transaction, so rotating through pooled connections read
        # every page afresh from the OS; and a pool checkout and check-in cost ~10 us.
        if self._own is None:
            fairy = self.engine.raw_connection()  # set up by the engine's connect hook
            fairy.detach()  # ours now, closed in close()
            self._own = fairy.dbapi_connection
            # SQLite's default page cache (2 MiB) is kept on purpose: each commit trims
            # the cache, which here walked its whole hash table; with a 64 MiB cache that
            # cost ~3 % of the server's CPU, more than the page reads it saved (~0.5 %).
        elif self._own.in_transaction:  # left open by a failed rollback
            self._own.rollback()
        return self._own

    def close(self) -> None:
        """Close the connection inline calls run on (at shutdown)."""
        self.flush()
        with self._own_lock:
            if self._own is not None:
                self._own.close()
                self._own = None

    def _unit(
        self, raw: Any, fn: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        from app.core.errors import AppError

        tx = Tx(raw, self.engine.dialect.name)
        try:
            try:
                result = fn(tx, *args, **kwargs)
            except AppError as exc:
                # Some refusals must still be recorded (a failed code check counts
                # against the attempt limit), so they commit before they are raised.
                if exc.commit:
                    tx.commit()
                elif tx.kept:
                    tx.undo_since_kept()
                    tx.commit()
                else:
                    tx.rollback()
                raise
            except BaseException:
                tx.rollback()
                raise
            tx.commit()
            return result
        finally:
            tx.close()

    async def run(
        self, fn: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run fn(tx, ...) in one transaction from async code.

        On SQLite the loop's calls share one transaction per turn of the event loop
        (group commit, see :class:`_Group`); each call still answers only once that
        transaction is durable.
        """
        if not self.inline:
            return await anyio.to_thread.run_sync(lambda: self.call(fn, *args, **kwargs))
        while self._held is not None:  # a WAL restart is finishing (see checkpoint)
            await self._held.wait()
        group = self._group or self._open_group()
        if group is None:  # another thread has the loop's connection: run on a pooled one
            return self.call(fn, *args, **kwargs)
        member = _Member(fn, args, kwargs)
        group.run(member)
        if group.replay:
            self._flush(group)  # now, before anyone else joins
        await asyncio.shield(group.done)  # raises what the COMMIT raised
        if member.error is not None:
            raise member.error
        return member.result

    def _open_group(self) -> _Group | None:
        if not self._own_lock.acquire(blocking=False):
            return None
        try:
            loop = asyncio.get_running_loop()
            group = _Group(Tx(self._own_connection(), self.engine.dialect.name), loop)
        except BaseException:
            self._own_lock.release()
            raise
        self._group = group
        # After every callback that is ready now: the requests that arrived in this turn
        # of the loop join the transaction first, then one COMMIT makes them all durable.
        loop.call_soon(self._flush, group)
        return group

    def _flush(self, group: _Group) -> None:
        """Commit a group and wake its members (or replay them: see :class:`_Group`)."""
        if self._group is not group:
            return  # already flushed
        self._group = None
        try:
            try:
                if group.replay:
                    group.tx.rollback()
                else:
                    group.tx.commit()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    group.tx.rollback()
                group.done.set_exception(exc)
                group.done.exception()  # retrieved here; every member re-raises it
                return
            finally:
                group.tx.close()
            if group.replay:
                raw = self._own_connection()
                for member in group.members:
                    member.result = member.error = None
                    try:
                        member.result = self._unit(raw, member.fn, *member.args, **member.kwargs)
                    except Exception as exc:
                        member.error = exc
            group.done.set_result(None)
        finally:
            self._own_lock.release()

    def flush(self) -> None:
        """Commit the open group now (before synchronous work on the loop's thread)."""
        if self._group is not None:
            self._flush(self._group)

    async def checkpoint(self, *, restart_frames: int = 4096, tail_frames: int = 256) -> None:
        """Copy SQLite's WAL into the database from a thread, and keep the WAL short.

        SQLite starts the WAL over only when a write begins with every frame copied,
        which under steady load never happens by itself: the WAL then grows for ever,
        and each commit writes to new file blocks that the filesystem must first zero
        (measured: ~10 % of the server's CPU in the kernel's memset). So the copy runs
        in passes while requests go on, and once the WAL is long, the last short pass
        (a few frames and two syncs, ~1-2 ms) runs with new transactions held back; the
        next write then reuses the WAL from its start, in blocks already in memory.
        """
        frames = copied = 0
        for _ in range(3):
            before = copied
            _busy, frames, copied = await anyio.to_thread.run_sync(checkpoint, self.engine)
            # What a pass copied was written during the pass before it: when that is
            # little, so is what was written during this one.
            if copied - before <= tail_frames or copied < before:
                break
        if frames < restart_frames:
            return  # still short; it restarts by itself once a pass catches up
        self._held = held = asyncio.Event()
        self.flush()
        try:
            await anyio.to_thread.run_sync(checkpoint, self.engine)
        finally:
            self._held = None
            held.set()


def xact_lock(tx: Tx, name: str) -> None:
    """Serialise transactions that touch the same logical resource, across replicas.

    PostgreSQL takes a transaction-scoped advisory lock on a 64-bit hash of the name.
    SQLite needs nothing: every write transaction begins IMMEDIATE and so already
    holds the database's single write lock.
    """
    if tx.sqlite:
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    tx.execute("SELECT pg_advisory_xact_lock(:key)", {"key": key})
