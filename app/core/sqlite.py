"""The embedded SQLite database: its engine recipe, and the unit of work on it.

The units of a process run one at a time on one connection, inline on the event loop:
SQLite's statements take microseconds, and its one write lock serialises writers anyway.
A unit holds the write lock from its first statement (transactions begin IMMEDIATE).
Units that run in turn share a commit (app/core/group_commit.py).

Checkpoints (copying the write-ahead log into the database file) stay where SQLite puts
them, in the connection that commits. Running them from a thread of their own, on a
second connection, took 4-5 ms stalls off the event loop, but concurrent checkpoints and
writes on separate connections are what SQLite's "WAL-reset bug" needs (versions 3.7.0
to 3.51.2, https://www.sqlite.org/wal.html#walresetbug), and the test run that had such
a thread, on SQLite 3.40, reported "database disk image is malformed". Nothing that can
lose data is worth 80 us a request.

Waiting for the write lock while another process (``smsreg purge``, a second worker)
holds it happens on the event loop, not in SQLite: the process's connection has no busy
timeout, and :func:`wait_for_lock` retries a refused ``BEGIN IMMEDIATE`` after a short
``asyncio.sleep``. SQLite's own busy handler sleeps inside the statement, which froze
every request of the process for as long as the other held the lock, and its back-off
(up to 100 ms between tries) left the lock unused for tens of milliseconds after it
was let go.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.sql.base import Executable

from app.core.group_commit import Turns
from app.core.sql import R, Sql, sqlite_params
from app.core.tx import Tx

T = TypeVar("T")
log = logging.getLogger("smsreg.db")

# How long a statement that needs the write lock waits for another connection to let
# it go (the engine's busy timeout, for connections that wait in SQLite), and how
# often it tries meanwhile: from 1 ms, doubling, to every 10 ms.
LOCK_TIMEOUT_SECONDS = 30.0
_FIRST_RETRY_SECONDS = 0.001
_LAST_RETRY_SECONDS = 0.010


def _owner_only(database: Path) -> None:
    """The database file, created 0600 if missing, and it, its -wal and its -shm made
    0600: they hold the registry (sealed numbers, but every index and audit row).

    Never opens a file that exists: closing any descriptor of a database file drops
    every POSIX lock the process holds on it, those of its live connections too.
    """
    with suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            database.with_name(database.name + suffix).chmod(0o600)


def sqlite_engine(url: str, *, cache_mb: int | None) -> Engine:
    """A SQLite engine: WAL, transactions begun IMMEDIATE, a page cache of ``cache_mb``
    if given, owner-only files, deleted bytes overwritten."""
    database = sa.engine.make_url(url).database
    path: Path | None = None
    if database and database != ":memory:":
        path = Path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        # SQLite creates -wal and -shm with the database file's mode: 0600 from the start.
        _owner_only(path)
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": LOCK_TIMEOUT_SECONDS},
        hide_parameters=True,  # no value of a statement in an error's text (app.core.db)
    )

    # SQLAlchemy's documented recipe for transactions the driver does not begin by
    # itself: autocommit at the driver, and BEGIN where the transaction starts.
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL survives a process crash; only a power cut may lose the last
        # commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_SECONDS * 1000)}")
        if cache_mb is not None:  # a negative size is in KiB
            cursor.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
        # A deleted row's bytes are overwritten, not left in a free page: an erased
        # subject's encrypted number and blind index must not survive in the file.
        cursor.execute("PRAGMA secure_delete=ON")
        # Statement journals (the pages a statement changes, kept so that it alone can be
        # undone) in memory, not in a temporary file: such a file would hold copies of
        # pages an erasure deleted from, left in free disk space once it is gone; and a
        # purge batch wrote every page it deleted from to it (7 % of a purge's time at
        # 200,000 subscribers). Sorts and temporary B-trees go to memory with them: a
        # migration that builds an index on a large table sorts its keys in memory.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()
        if path is not None:  # files an older version created 0644 are narrowed too
            _owner_only(path)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a read-then-write (a limit check
        # and its insert) is atomic across processes instead of failing late. The
        # service's unit of work may have begun it on the driver connection already.
        if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def waits_on_loop(dbapi_connection: Any) -> None:
    """Make a connection refuse at once (``SQLITE_BUSY``) where it would wait in
    SQLite's busy handler: its caller waits with :func:`wait_for_lock` instead."""
    dbapi_connection.execute("PRAGMA busy_timeout=0").close()


async def wait_for_lock(attempt: Callable[[], T], *, busy: Callable[[T], bool] | None = None) -> T:
    """``attempt()``, tried again while another connection holds SQLite's write lock:
    it raised ``SQLITE_BUSY``, or ``busy`` says its result is a refusal. Between tries
    the event loop runs; after :data:`LOCK_TIMEOUT_SECONDS` the last refusal stands."""
    deadline: float | None = None
    pause = _FIRST_RETRY_SECONDS
    while True:
        try:
            result = attempt()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or _past(deadline):
                raise
        else:
            if busy is None or not busy(result) or _past(deadline):
                return result
        if deadline is None:
            deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        await asyncio.sleep(pause)
        pause = min(pause * 2, _LAST_RETRY_SECONDS)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class SqliteTx(Tx):
    """A unit on the process's one SQLite connection, inline on the event loop: units
    take the connection in turn (:class:`Turns`), each in a savepoint of the shared
    transaction, begun IMMEDIATE."""

    dialect = "sqlite"

    def __init__(self, turns: Turns) -> None:
        self._turns = turns
        self._after_commit = []
        self._kept_if_refused = []
        self._conn: sa.Connection | None = None
        self._raw: Any = None
        self._kept = False
        self._alone = False

    def commit_alone(self) -> None:
        self._alone = True

    async def _begin(self) -> sa.Connection:
        if self._conn is None:
            await self._turns.take()
            try:
                conn = self._turns.connection()
                raw: Any = conn.connection.driver_connection
                # Begun on the driver connection: SQLAlchemy's begin costs more than a hot
                # path's statement. A SQLAlchemy statement that runs later joins it
                # (app.core.sqlite's begin hook sees it open); the group's commit ends it
                # through SQLAlchemy then, so that its view of the connection stays true.
                if not raw.in_transaction:
                    await wait_for_lock(lambda: raw.execute("BEGIN IMMEDIATE"))
                self._turns.began()
                raw.execute("SAVEPOINT unit")
            except BaseException:
                await self._turns.leave(keep=False, on_commit=self._after_commit)
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
        cursor = self._raw.execute(sql.text, sqlite_params(params))
        try:
            return sql.rows(cursor.fetchall(), sqlite=True)
        finally:
            cursor.close()

    async def run(self, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
        self._next_statement()
        await self._begin()
        cursor = self._raw.execute(sql.text, sqlite_params(params))
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
        cursor = self._raw.executemany(sql.text, [sqlite_params(row) for row in rows])
        cursor.close()

    async def _commit(self) -> None:
        if self._conn is None:
            return
        try:
            self._raw.execute("RELEASE unit")
        except BaseException:
            await self._rollback()
            raise
        self._kept = True

    async def _rollback(self) -> None:
        if self._conn is None:
            return
        if not self._conn.invalidated and self._raw.in_transaction:
            self._raw.execute("ROLLBACK TO unit")
            self._raw.execute("RELEASE unit")
        else:
            # SQLite ended the shared transaction (an I/O error, a full disk, or an
            # interrupt inside a statement): the units waiting for it fail.
            self._turns.rolled_back()

    async def _close(self) -> None:
        if self._conn is not None:
            try:
                await self._turns.leave(
                    keep=self._kept, alone=self._alone, on_commit=self._after_commit
                )
            finally:
                self._conn = self._raw = None
