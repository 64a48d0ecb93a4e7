"""Engine, column types and the unit of work every request runs its service call in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

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


def create_db_engine(url: str) -> Engine:
    """An engine for SQLite (WAL, writers serialised) or PostgreSQL (psycopg 3)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def _sqlite_engine(url: str) -> Engine:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL survives a process crash; only a power cut may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a read-then-write (a limit check
        # followed by its insert) is atomic across processes instead of failing late.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """Runs a service function in one transaction: commit on success, roll back on error.

    SQLite calls take microseconds and share one write lock, so they run inline on the
    event loop (threads would only queue for that lock). PostgreSQL calls wait on the
    network, so they run in a worker thread while the loop serves other requests.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.inline = engine.dialect.name == "sqlite"

    def session(self) -> Session:
        """A new session (callers own its lifetime)."""
        return Session(self.engine, expire_on_commit=False)

    def call(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run fn(session, ...) in one transaction, synchronously."""
        from app.core.errors import AppError

        with self.session() as session:
            try:
                result = fn(session, *args, **kwargs)
            except AppError as exc:
                # Some refusals must still be recorded (a failed code check counts
                # against the attempt limit), so they commit before they are raised.
                if exc.commit:
                    session.commit()
                else:
                    session.rollback()
                raise
            except BaseException:
                session.rollback()
                raise
            session.commit()
            return result

    async def run(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run fn(session, ...) in one transaction from async code."""
        if self.inline:
            return self.call(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(lambda: self.call(fn, *args, **kwargs))


def xact_lock(session: Session, name: str) -> None:
    """Serialise transactions that touch the same logical resource, across replicas.

    PostgreSQL takes a transaction-scoped advisory lock on a 64-bit hash of the name.
    SQLite needs nothing: every write transaction begins IMMEDIATE and so already
    holds the database's single write lock.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    import hashlib

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def insert_on_conflict(session: Session, table: sa.Table) -> Any:
    """The dialect's INSERT that supports ON CONFLICT (SQLite and PostgreSQL alike)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)
