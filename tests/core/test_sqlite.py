"""The embedded SQLite database: a unit of work holds the write lock from its first
statement, fixed SQL and SQLAlchemy statements share its transaction, and units that
run in turn share a commit without one answering before it or failing for another."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar

import pytest
import sqlalchemy as sa

from app.core import sqlite as sqlite_module
from app.core.db import Database
from app.core.errors import AppError
from app.core.group_commit import GroupRolledBack, Turns
from app.core.sql import Sql

_INSERT = Sql("INSERT INTO t (x) VALUES (:x)")
T = TypeVar("T")


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


# -- Group commit -------------------------------------------------------------------------


class Recorded(AppError):
    status = 422
    slug = "recorded"
    title = "Refused, and the attempt recorded"
    commit = True


async def _unit(
    db: Database, x: str, *, then: BaseException | None = None, alone: bool = False
) -> list[str]:
    """One unit writing ``x`` (and raising ``then``); what another connection reads once
    it has ended, either way."""
    try:
        async with db.transaction() as tx:
            if alone:
                tx.commit_alone()
            await tx.run(_INSERT, {"x": x})
            if then is not None:
                raise then
    except BaseException:
        if then is None:
            raise
    return rows(db)


@asynccontextmanager
async def traced(tmp_path: Path) -> AsyncIterator[tuple[Database, Callable[[], int]]]:
    """A database with a table ``t``, and how many COMMITs its connection has run since."""
    statements: list[str] = []

    def trace(dbapi_connection, _record) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    sa.event.listen(sa.Engine, "connect", trace)
    database = Database(f"sqlite:///{tmp_path / 'traced.db'}")
    try:
        async with database.transaction() as tx:
            await tx.execute(sa.text("CREATE TABLE t (x TEXT)"))
        statements.clear()
        yield database, lambda: statements.count("COMMIT")
    finally:
        sa.event.remove(sa.Engine, "connect", trace)
        await database.dispose()


async def together(*units: Awaitable[T], return_exceptions: bool = False) -> list[T]:
    """Run units as requests that arrive together; a unit left waiting fails the test."""
    return list(
        await asyncio.wait_for(
            asyncio.gather(*units, return_exceptions=return_exceptions), timeout=10
        )
    )


async def test_units_ready_together_share_one_commit_and_none_answers_before_it(tmp_path) -> None:
    """Three requests ready in the same turn of the event loop: each runs alone, and
    each ends only once the one commit that holds all three is durable."""
    async with traced(tmp_path) as (db, commits):
        seen = await together(*(_unit(db, x) for x in "abc"))
        assert seen == [["a", "b", "c"]] * 3
        assert commits() == 1


async def test_a_group_never_grows_past_its_limit_and_every_unit_waits_for_its_commit(
    tmp_path,
) -> None:
    async with traced(tmp_path) as (db, commits):
        n = 2 * Turns.LIMIT + 5
        xs = [f"u{i:03}" for i in range(n)]
        seen = await together(*(_unit(db, x) for x in xs))
        assert rows(db) == xs
        for x, read in zip(xs, seen, strict=True):
            assert x in read  # its own write was committed before it returned
        assert commits() == 3  # the limit, the limit, the rest


async def test_a_unit_that_fails_in_a_group_undoes_only_its_own_writes(db) -> None:
    """The others keep theirs (a refusal that is recorded too), and even the failed unit
    answers only after the group's commit: it may have read what the units before it
    wrote."""
    seen = await together(
        _unit(db, "a"),
        _unit(db, "b", then=RuntimeError("boom")),
        _unit(db, "c", then=Recorded()),
        _unit(db, "d"),
    )
    assert seen == [["a", "c", "d"]] * 4


async def test_when_the_shared_commit_fails_every_unit_of_the_group_fails(db) -> None:
    """A constraint that SQLite checks only at COMMIT fails it: every unit of the group
    raises, none of their writes stays, and the next unit commits as ever."""
    orphan = await _orphans(db, also="orphan's")
    outcomes = await together(_unit(db, "a"), orphan(), _unit(db, "c"), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [sa.exc.IntegrityError] * 3
    assert rows(db) == []
    assert await _unit(db, "after") == ["after"]


async def test_when_sqlite_rolls_the_shared_transaction_back_every_unit_fails(db) -> None:
    """A statement after which SQLite ends the whole transaction (as an I/O error or a
    full disk does; here a trigger's RAISE(ROLLBACK)) takes the units before it in the
    group down with it: they fail rather than answer for writes that are gone."""
    async with db.transaction() as tx:
        await tx.execute(
            sa.text(
                "CREATE TEMP TRIGGER doom BEFORE INSERT ON t WHEN NEW.x = 'doom' "
                "BEGIN SELECT RAISE(ROLLBACK, 'the transaction is gone'); END"
            )
        )
    outcomes = await together(
        _unit(db, "a"),
        _unit(db, "doom", then=None),
        _unit(db, "c"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], GroupRolledBack)
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert outcomes[2] == ["c"]  # a group of its own, after the loss
    assert rows(db) == ["c"]
    assert await _unit(db, "after") == ["c", "after"]


async def test_a_unit_that_commits_alone_is_durable_before_the_next_unit_runs(tmp_path) -> None:
    """A ledger entry's unit: it and the units before it commit when it ends, so no later
    unit (a checkpoint that tells its witness the head) reads it uncommitted."""
    async with traced(tmp_path) as (db, commits):
        seen = await together(_unit(db, "a"), _unit(db, "b", alone=True), _unit(db, "c"))
        assert seen[1] == ["a", "b"] or seen[1] == ["a", "b", "c"]
        assert rows(db) == ["a", "b", "c"]
        assert commits() == 2  # a and b when b ended; then c


async def test_a_unit_cancelled_while_it_waits_still_runs_its_after_commit_work(db) -> None:
    """Its writes are in the group and become durable: what waits for them (waking the
    outbox, the shared send counts) still happens, once they are."""
    done: list[str] = []

    async def unit() -> None:
        async with db.transaction() as tx:
            await tx.run(_INSERT, {"x": "cancelled"})
            tx.after_commit(lambda: done.append("woken"))

    task = asyncio.create_task(unit())
    await asyncio.sleep(0)  # it ran and now waits for the group's commit
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(_one_statement(db), timeout=5)  # a later group: after the flush
    assert rows(db)[:1] == ["cancelled"]
    assert done == ["woken"]


async def test_a_pragma_after_a_failed_group_runs_and_leaves_the_failure_to_the_group(db) -> None:
    """A checkpoint that finds a group waiting commits it first; if that commit fails,
    the group's units raise it, and the checkpoint still runs."""
    orphan = await _orphans(db)
    outcomes = await together(
        _unit(db, "a"), orphan(), db.checkpoint(truncate=False), return_exceptions=True
    )
    assert [type(outcome) for outcome in outcomes[:2]] == [sa.exc.IntegrityError] * 2
    assert outcomes[2] is True
    assert rows(db) == []


async def _orphans(db: Database, *, also: str | None = None) -> Callable[[], Awaitable[None]]:
    """A unit whose writes the group's COMMIT refuses (a deferred foreign key), writing
    ``also`` to ``t`` first if given."""
    async with db.transaction() as tx:
        await tx.execute(sa.text("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)"))
        await tx.execute(
            sa.text(
                "CREATE TEMP TABLE child (parent_id INTEGER "
                "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )

    async def orphan() -> None:
        async with db.transaction() as tx:
            if also is not None:
                await tx.run(_INSERT, {"x": also})
            await tx.execute(sa.text("INSERT INTO child (parent_id) VALUES (42)"))

    return orphan
