"""The unit of work: every call is all or nothing, and answers only once it is durable.

On SQLite the calls of one turn of the event loop share one transaction and one COMMIT
(group commit, app.core.db._Group). These tests hold the promises each call makes on
its own whether or not it shared its transaction: on both databases, and on SQLite
with the calls made together so that they do share it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.core.db import Database, Tx, create_db_engine
from app.core.errors import AppError


class Refused(AppError):
    status = 409
    slug = "refused"
    title = "Refused"


class RefusedAndRecorded(AppError):
    status = 429
    slug = "refused-recorded"
    title = "Refused, and the attempt counts"
    commit = True


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(create_db_engine(database_url, background_checkpoint=True))
    yield database
    database.close()
    database.engine.dispose()


def write(tx: Tx, subject: str, *, then: BaseException | None = None) -> str:
    """Write one row marked ``subject``; then raise ``then`` if given."""
    tx.execute(
        "INSERT INTO audit_events (tag, actor, subject, at, details) "
        "VALUES ('test', 'test', :subject, '2026-01-01 00:00:00', '{}')",
        {"subject": subject},
    )
    if then is not None:
        raise then
    return subject


def written(db: Database) -> set[str]:
    """The rows that are durable, read on a connection of their own."""
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT subject FROM audit_events WHERE tag = 'test'"))
        return {row[0] for row in rows}


def sqlite_only(db: Database) -> None:
    if not db.inline:
        pytest.skip("group commit is SQLite's (PostgreSQL calls run on pooled connections)")


async def together(*calls: Any) -> list[Any]:
    """Start every call in the same turn of the loop; their answers or errors, in order."""
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_each_call_answers_only_once_its_writes_are_durable(db: Database) -> None:
    async def one(name: str) -> set[str]:
        await db.run(write, name)
        return written(db)  # read the moment the call answered

    seen = await together(*(one(f"row{i}") for i in range(10)))

    for i, durable in enumerate(seen):
        assert f"row{i}" in durable
    assert written(db) == {f"row{i}" for i in range(10)}


async def test_calls_made_together_share_one_commit(db: Database) -> None:
    sqlite_only(db)
    statements: list[str] = []
    await db.run(write, "warm")  # opens the loop's own connection
    db._own_connection().set_trace_callback(statements.append)

    answers = await together(*(db.run(write, f"row{i}") for i in range(10)))

    assert answers == [f"row{i}" for i in range(10)]
    assert statements.count("COMMIT") == 1
    assert statements.count("BEGIN IMMEDIATE") == 1


async def test_a_failed_call_is_undone_alone(db: Database) -> None:
    answers = await together(
        db.run(write, "first"),
        db.run(write, "refused", then=Refused("no")),
        db.run(write, "second"),
        db.run(write, "crashed", then=RuntimeError("bug")),
        db.run(write, "third"),
    )

    assert answers[0] == "first" and answers[2] == "second" and answers[4] == "third"
    assert isinstance(answers[1], Refused)
    assert isinstance(answers[3], RuntimeError)
    assert written(db) == {"first", "second", "third"}


async def test_a_failure_in_a_shared_transaction_runs_the_others_again_alone(
    db: Database,
) -> None:
    sqlite_only(db)
    runs: list[str] = []

    def counted(tx: Tx, name: str, then: BaseException | None = None) -> str:
        runs.append(name)
        return write(tx, name, then=then)

    answers = await together(
        db.run(counted, "before"),
        db.run(counted, "refused", Refused("no")),
        db.run(counted, "after"),  # joins no broken transaction: a new one
    )

    assert answers[0] == "before" and answers[2] == "after"
    assert isinstance(answers[1], Refused)
    assert written(db) == {"before", "after"}
    # The shared transaction was rolled back and its members ran again one by one.
    assert runs == ["before", "refused", "before", "refused", "after"]


async def test_a_refusal_that_is_recorded_keeps_its_writes(db: Database) -> None:
    answers = await together(
        db.run(write, "attempt", then=RefusedAndRecorded("counted")),
        db.run(write, "other"),
    )

    assert isinstance(answers[0], RefusedAndRecorded)
    assert written(db) == {"attempt", "other"}


async def test_what_a_call_kept_stays_and_the_rest_of_it_goes(db: Database) -> None:
    def keep_then_refuse(tx: Tx) -> None:
        write(tx, "kept")
        tx.keep()
        write(tx, "undone", then=Refused("no"))

    answers = await together(
        db.run(write, "before"), db.run(keep_then_refuse), db.run(write, "after")
    )

    assert isinstance(answers[1], Refused)
    assert written(db) == {"before", "kept", "after"}


async def test_a_failed_commit_fails_every_call_that_shared_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_only(db)
    await db.run(write, "warm")
    real_commit = Tx.commit

    def failing_commit(tx: Tx) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Tx, "commit", failing_commit)
    answers = await together(*(db.run(write, f"row{i}") for i in range(3)))
    monkeypatch.setattr(Tx, "commit", real_commit)

    assert all(isinstance(answer, OSError) for answer in answers)
    assert written(db) == {"warm"}
    assert await db.run(write, "later") == "later"  # the connection is usable again
    assert written(db) == {"warm", "later"}


async def test_a_synchronous_call_on_the_loop_does_not_wait_for_the_open_transaction(
    db: Database,
) -> None:
    sqlite_only(db)
    pending = asyncio.ensure_future(db.run(write, "async"))
    await asyncio.sleep(0)  # the call above has run and holds the write lock
    assert db._group is not None

    began = time.monotonic()
    assert db.call(write, "sync") == "sync"  # would wait for the busy timeout (30 s)

    assert time.monotonic() - began < 5
    assert await pending == "async"
    assert written(db) == {"async", "sync"}


async def test_an_instant_is_stored_as_utc_whatever_zone_it_came_in(db: Database) -> None:
    """The same instant in two zones is stored the same; a time without a zone is refused."""
    utc = dt.datetime(2026, 3, 1, 9, 30, 0, 250, tzinfo=dt.UTC)
    tokyo = utc.astimezone(dt.timezone(dt.timedelta(hours=9)))

    def store(tx: Tx) -> list[Any]:
        for subject, at in (("utc", utc), ("tokyo", tokyo), ("later", utc + dt.timedelta(1))):
            tx.execute(
                "INSERT INTO audit_events (tag, actor, subject, at, details) "
                "VALUES ('test', 'test', :subject, :at, '{}')",
                {"subject": subject, "at": at},
            )
        with pytest.raises(ValueError, match="naive"):
            tx.execute("SELECT :at", {"at": utc.replace(tzinfo=None)})
        rows = tx.all(
            "SELECT at AS stored_at FROM audit_events WHERE tag = 'test' ORDER BY subject"
        )
        return [row.stored_at for row in rows]

    later, tokyo_at, utc_at = await db.run(store)
    assert utc_at == tokyo_at == utc
    assert later == utc + dt.timedelta(days=1)


def test_a_row_reads_columns_as_attributes_and_stays_a_dict(db: Database) -> None:
    """Columns read as attributes (a dict method is never hidden by a column of its
    name); a missing one is an AttributeError; a row is never written through attributes."""

    def read(tx: Tx) -> Any:
        return tx.one("SELECT 1 AS id, 'x' AS status, 2 AS keys, 3 AS \"not an identifier\"")

    row = db.call(read)
    assert row is not None
    assert (row.id, row.status) == (1, "x")
    assert row["keys"] == 2 and list(row.keys()) == ["id", "status", "keys", "not an identifier"]
    assert row["not an identifier"] == 3
    assert row == {"id": 1, "status": "x", "keys": 2, "not an identifier": 3}
    with pytest.raises(AttributeError):
        _ = row.missing
    with pytest.raises(AttributeError):
        row.status = "y"
    row.update(status="y", later="z")  # a key added later still reads as an attribute
    assert (row.status, row.later) == ("y", "z")
    copied = pickle.loads(pickle.dumps(row))  # noqa: S301 (our own bytes)
    assert copied == row and copied.later == "z"


@pytest.mark.parametrize(
    "instant",
    [
        dt.datetime(2026, 3, 1, 9, 30, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    ],
)
async def test_an_instant_reads_back_as_it_was_stored(db: Database, instant: dt.datetime) -> None:
    """Whole seconds, the last microsecond of a year, a three-digit year: each comes
    back unchanged, and compares in SQL as the time it is."""

    def store(tx: Tx) -> Any:
        tx.execute(
            "INSERT INTO audit_events (tag, actor, subject, at, details) "
            "VALUES ('test', 'test', 'x', :at, '{}')",
            {"at": instant},
        )
        return tx.one(
            "SELECT at AS stored_at, "
            "(SELECT count(*) FROM audit_events WHERE tag = 'test' AND at = :at) AS same, "
            "(SELECT count(*) FROM audit_events WHERE tag = 'test' AND at < :later) AS before "
            "FROM audit_events WHERE tag = 'test'",
            {"at": instant, "later": instant + dt.timedelta(microseconds=1)},
        )

    row = await db.run(store)
    assert (row.stored_at, row.same, row.before) == (instant, 1, 1)
