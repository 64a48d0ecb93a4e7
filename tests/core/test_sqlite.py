"""The embedded SQLite database: a unit of work holds the write lock from its first
statement, and fixed SQL and SQLAlchemy statements share its transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import sqlalchemy as sa

from app.core import sqlite as sqlite_module
from app.core.db import Database
from app.core.sql import Sql

_INSERT = Sql("INSERT INTO t (x) VALUES (:x)")


class Count(NamedTuple):
    n: int


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'smsreg.db'}")
    async with database.transaction() as tx:
        await tx.execute(sa.text("CREATE TABLE t (x TEXT)"))
    yield database
    await database.dispose()


def rows(db: Database) -> list[str]:
    path = sa.engine.make_url(db.url).database
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY rowid")]


def another_writer_is_locked_out(db: Database) -> bool:
    path = sa.engine.make_url(db.url).database
    conn = sqlite3.connect(str(path), timeout=0.05, isolation_level=None)
    try:
        conn.execute("INSERT INTO t (x) VALUES ('intruder')")
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    finally:
        conn.close()
    return False


@pytest.mark.parametrize("first", ["fixed", "sqlalchemy"])
async def test_a_unit_holds_the_write_lock_from_its_first_statement(db, first) -> None:
    """A read that comes first already holds the lock (BEGIN IMMEDIATE), however it runs,
    so a limit check and the insert it allows are one atomic step across processes."""
    async with db.transaction() as tx:
        if first == "fixed":
            await tx.fetch(Sql("SELECT count(*) FROM t", Count))
        else:
            await tx.execute(sa.text("SELECT count(*) FROM t"))
        assert another_writer_is_locked_out(db)
    assert not another_writer_is_locked_out(db)


async def test_fixed_sql_and_sqlalchemy_statements_commit_and_roll_back_together(db) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.run(_INSERT, {"x": "fixed"})
            await tx.execute(sa.text("INSERT INTO t (x) VALUES ('core')"))
            raise RuntimeError("boom")
    assert rows(db) == []
    for _ in range(2):  # and the unit after a SQLAlchemy statement begins as the first did
        async with db.transaction() as tx:
            await tx.execute(sa.text("INSERT INTO t (x) VALUES ('core')"))
            await tx.run(_INSERT, {"x": "fixed"})
            assert another_writer_is_locked_out(db)
    assert rows(db) == ["core", "fixed", "core", "fixed"]


async def test_an_interrupt_inside_a_statement_stays_an_interrupt(db) -> None:
    """Ctrl-C during a statement (a long purge): SQLAlchemy closes the connection, the
    unit's writes are gone with it, the interrupt reaches the caller as itself (the
    purge command reports what it kept), and the next unit starts afresh."""

    def interrupt(conn, cursor, statement, *args) -> None:
        if "interrupted" in statement:
            raise KeyboardInterrupt

    sa.event.listen(sa.Engine, "before_cursor_execute", interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            async with db.transaction() as tx:
                await tx.run(_INSERT, {"x": "lost"})
                await tx.execute(sa.text("SELECT 1 AS interrupted"))
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", interrupt)
    async with db.transaction() as tx:
        await tx.run(_INSERT, {"x": "kept"})
    assert rows(db) == ["kept"]


class HeldLock:
    """Another connection (another process, as ``smsreg purge`` is) holding the write lock."""

    def __init__(self, db: Database) -> None:
        path = sa.engine.make_url(db.url).database
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO t (x) VALUES ('other')")

    def release(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


async def ticks_while(waiting: asyncio.Task[object], *, seconds: float) -> int:
    """How often the event loop ran something else in ``seconds`` while ``waiting`` ran."""
    ticks = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.005)
        ticks += 1
    assert not waiting.done()
    return ticks


async def test_a_unit_waits_for_another_writer_without_stopping_the_event_loop(db) -> None:
    """While another process holds the write lock, the unit waits for it on the loop:
    the process's other work goes on (SQLite's own busy handler slept inside the
    statement and froze every request), and the unit begins once the lock is free."""
    await _one_statement(db)  # the connection exists before the lock is taken
    other = HeldLock(db)

    async def unit() -> None:
        async with db.transaction() as tx:
            await tx.run(_INSERT, {"x": "mine"})

    waiting = asyncio.create_task(unit())
    try:
        assert await ticks_while(waiting, seconds=0.3) >= 20
    finally:
        other.release()
    await asyncio.wait_for(waiting, timeout=1)
    assert rows(db) == ["ready", "other", "mine"]


async def test_a_unit_gives_up_when_the_lock_stays_taken(db, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_module, "LOCK_TIMEOUT_SECONDS", 0.2)
    await _one_statement(db)
    other = HeldLock(db)
    began = time.monotonic()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            async with db.transaction() as tx:
                await tx.run(_INSERT, {"x": "never"})
    finally:
        other.release()
    assert 0.2 <= time.monotonic() - began < 2
    async with db.transaction() as tx:  # the lock and the connection are usable again
        await tx.run(_INSERT, {"x": "after"})
    assert rows(db) == ["ready", "other", "after"]


async def test_emptying_the_log_waits_for_another_writer_on_the_event_loop(db) -> None:
    await _one_statement(db)
    other = HeldLock(db)
    waiting = asyncio.create_task(db.checkpoint())
    try:
        assert await ticks_while(waiting, seconds=0.2) >= 10
    finally:
        other.release()
    assert await asyncio.wait_for(waiting, timeout=1) is True
    wal = Path(str(sa.engine.make_url(db.url).database) + "-wal")
    assert wal.stat().st_size == 0


async def _one_statement(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.run(_INSERT, {"x": "ready"})
