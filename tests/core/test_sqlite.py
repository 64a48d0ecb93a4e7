"""The embedded SQLite database: a unit of work holds the write lock from its first
statement, and fixed SQL and SQLAlchemy statements share its transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

import pytest
import sqlalchemy as sa

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
