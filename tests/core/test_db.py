"""The unit of work's promises, on both databases: a block commits when it ends and rolls
back when it raises, a refusal that must be recorded still commits, work waits for the
commit, and fixed statements decode their rows by the row type's field types."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from typing import Annotated, NamedTuple

import pytest
import sqlalchemy as sa

from app.core.db import Database, UTCDateTime
from app.core.errors import AppError
from app.core.sql import Json, Sql, lock_key
from app.models.audit import AuditEvent
from app.models.types import table
from tests.conftest import engine_for

audit = table(AuditEvent)


class Refused(AppError):
    status = 409
    slug = "refused"
    title = "Refused"


class Recorded(AppError):
    status = 422
    slug = "recorded"
    title = "Refused, and the attempt recorded"
    commit = True


class Row(NamedTuple):
    actor: str
    at: dt.datetime
    details: Annotated[dict[str, object], Json]
    subject: str | None


_SELECT = Sql(
    "SELECT actor, at, details, subject FROM audit_events WHERE tag = :tag ORDER BY id", Row
)
_INSERT = Sql(
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "VALUES (:tag, :actor, :subject, :at, :details)"
)
NOW = dt.datetime(2026, 12, 3, 9, 30, 15, 250_000, tzinfo=dt.UTC)


@pytest.fixture
async def db(database_url: str):
    database = Database(database_url)
    yield database
    await database.dispose()


def written(db: Database, tag: str = "t") -> list[str]:
    """The actors of the events of a tag, read from another connection."""
    with engine_for(db.url).connect() as conn:
        return list(
            conn.execute(
                sa.select(audit.c.actor).where(audit.c.tag == tag).order_by(audit.c.id)
            ).scalars()
        )


async def insert(tx, actor: str, *, tag: str = "t") -> None:
    await tx.run(
        _INSERT, {"tag": tag, "actor": actor, "subject": None, "at": NOW, "details": {"n": 1}}
    )


async def test_a_block_commits_when_it_ends(db: Database) -> None:
    async with db.transaction() as tx:
        await insert(tx, "a")
        await tx.execute(sa.insert(audit).values(tag="t", actor="b", at=NOW, details={}))
    assert written(db) == ["a", "b"]


async def test_a_block_that_raises_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await insert(tx, "a")
            raise RuntimeError("boom")
    with pytest.raises(Refused):
        async with db.transaction() as tx:
            await insert(tx, "b")
            raise Refused()
    assert written(db) == []


async def test_a_refusal_that_is_recorded_keeps_its_writes(db: Database) -> None:
    with pytest.raises(Recorded):
        async with db.transaction() as tx:
            await insert(tx, "counted")
            raise Recorded()
    assert written(db) == ["counted"]


async def test_after_commit_runs_only_once_the_writes_are_durable(db: Database) -> None:
    seen: list[list[str]] = []
    async with db.transaction() as tx:
        await insert(tx, "a")
        tx.after_commit(lambda: seen.append(written(db)))
        assert seen == []
    assert seen == [["a"]]
    with pytest.raises(Refused):
        async with db.transaction() as tx:
            tx.after_commit(lambda: seen.append(["never"]))
            raise Refused()
    assert seen == [["a"]]


async def test_a_block_that_runs_no_statement_touches_no_connection(db: Database) -> None:
    async with db.transaction():
        pass
    assert db.pool_status().get("checked_out", 0) == 0


async def test_transactions_of_one_process_never_see_each_others_uncommitted_writes(
    db: Database,
) -> None:
    """Two units on one loop: the second waits for the first on SQLite (one write lock),
    and runs beside it on PostgreSQL; neither sees the other's work before it commits."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with db.transaction() as tx:
            await insert(tx, "first")
            started.set()
            await release.wait()

    async def second() -> list[str]:
        await started.wait()
        async with db.transaction() as tx:
            rows = await tx.fetch(_SELECT, {"tag": "t"})
            return [row.actor for row in rows]

    task = asyncio.create_task(first())
    reader = asyncio.create_task(second())
    await asyncio.sleep(0.05)
    release.set()
    await task
    assert await reader in ([], ["first"])  # never a half-done unit
    assert written(db) == ["first"]


async def test_fixed_statements_decode_rows_by_their_field_types(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.run(
            _INSERT,
            {"tag": "t", "actor": "a", "subject": None, "at": NOW, "details": {"k": [1, "x"]}},
        )
        (row,) = await tx.fetch(_SELECT, {"tag": "t"})
    assert row == Row(actor="a", at=NOW, details={"k": [1, "x"]}, subject=None)
    assert row.at.tzinfo is not None and row.at.utcoffset() == dt.timedelta(0)


async def test_an_instant_is_stored_as_utc_whatever_zone_it_came_in(db: Database) -> None:
    tokyo = NOW.astimezone(dt.timezone(dt.timedelta(hours=9)))
    async with db.transaction() as tx:
        await tx.run(
            _INSERT, {"tag": "z", "actor": "a", "subject": None, "at": tokyo, "details": {}}
        )
        await tx.execute(sa.insert(audit).values(tag="z", actor="b", at=tokyo, details={}))
        rows = await tx.fetch(_SELECT, {"tag": "z"})
        core = (await tx.execute(sa.select(audit.c.at).where(audit.c.tag == "z"))).scalars().all()
    assert [row.at for row in rows] == [NOW, NOW] == list(core)


async def test_a_naive_instant_is_refused(db: Database) -> None:
    with pytest.raises((ValueError, sa.exc.StatementError)):
        async with db.transaction() as tx:
            await tx.run(
                _INSERT,
                {"tag": "n", "actor": "a", "subject": None, "at": NOW.replace(tzinfo=None),
                 "details": {}},
            )  # fmt: skip
    assert written(db, "n") == []


@pytest.mark.parametrize(
    "instant",
    [
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(999, 6, 1, 12, tzinfo=dt.UTC),
    ],
)
async def test_an_instant_reads_back_as_it_was_stored_and_compares_as_time(
    db: Database, instant: dt.datetime
) -> None:
    async with db.transaction() as tx:
        await tx.run(
            _INSERT, {"tag": "c", "actor": "a", "subject": None, "at": instant, "details": {}}
        )
        (row,) = await tx.fetch(_SELECT, {"tag": "c"})
        before = await tx.execute(
            sa.select(sa.func.count())
            .select_from(audit)
            .where(audit.c.tag == "c", audit.c.at > instant - dt.timedelta(microseconds=1))
        )
    assert row.at == instant
    assert before.scalar() == 1


async def test_a_single_statement_on_its_own_is_atomic_and_counted(db: Database) -> None:
    params = {"tag": "one", "actor": "a", "subject": None, "at": NOW, "details": {}}
    assert await db.run_atomic(_INSERT, params) == 1
    assert [row.actor for row in await db.fetch_atomic(_SELECT, {"tag": "one"})] == ["a"]


async def test_a_broken_connection_is_not_handed_out_again(database_url: str) -> None:
    """A connection the server dropped is thrown away, and the next unit works."""
    db = Database(database_url)
    try:
        if db.sqlite:
            pytest.skip("connections are dropped by the PostgreSQL server")
        async with db.transaction() as tx:
            pid = (await tx.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
        with engine_for(database_url).connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception):  # noqa: B017 (the driver's own error for a lost connection)
            async with db.transaction() as tx:
                await tx.execute(sa.text("SELECT 1"))
        async with db.transaction() as tx:
            assert (await tx.execute(sa.text("SELECT 1"))).scalar() == 1
    finally:
        await db.dispose()


class Backend(NamedTuple):
    pid: int


_PID = Sql("SELECT pg_backend_pid() AS pid", Backend, read_only=True)


async def test_after_a_server_restart_one_unit_fails_not_one_per_pooled_connection(
    database_url: str,
) -> None:
    """When a connection turns out lost (the server restarted, or dropped them all), the
    pool's other idle connections are presumed lost too and replaced: the next units
    work, rather than each pooled connection failing one request in turn."""
    db = Database(database_url)
    try:
        if db.sqlite:
            pytest.skip("connections are dropped by the PostgreSQL server")
        pids: set[int] = set()
        gate = asyncio.Event()

        async def hold() -> None:
            async with db.transaction() as tx:
                (row,) = await tx.fetch(_PID)  # the fixed-SQL path: the driver's own
                pids.add(row.pid)
                await gate.wait()

        holders = [asyncio.create_task(hold()) for _ in range(5)]
        while len(pids) < 5:
            await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(*holders)
        with engine_for(database_url).connect() as conn:  # as a restart would
            for pid in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        failed = 0
        for _ in range(5):
            try:
                async with db.transaction() as tx:
                    (row,) = await tx.fetch(_PID)
            except Exception:  # noqa: BLE001 (the driver's own error for a lost connection)
                failed += 1
            else:
                assert row.pid not in pids
        assert failed == 1
    finally:
        await db.dispose()


def test_utc_datetime_columns_refuse_naive_values() -> None:
    column = UTCDateTime()
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(NOW.replace(tzinfo=None), sa.dialects.sqlite.dialect())


@pytest.mark.parametrize("existing_mode", [None, 0o644])
async def test_sqlite_files_are_owner_only(tmp_path, existing_mode) -> None:
    path = tmp_path / "data" / "smsreg.db"
    if existing_mode is not None:  # made by an older version, readable by everyone
        path.parent.mkdir()
        path.touch(mode=existing_mode)
        path.chmod(existing_mode)
    database = Database(f"sqlite:///{path}")
    try:
        async with database.transaction() as tx:
            await tx.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            await tx.execute(sa.text("INSERT INTO t VALUES (1)"))
        files = [path, path.with_name("smsreg.db-wal"), path.with_name("smsreg.db-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {
            f.name: "0o600" for f in files
        }
    finally:
        await database.dispose()


async def test_sqlite_keeps_the_page_cache_the_settings_ask_for(database_url: str) -> None:
    """SMSREG_SQLITE_CACHE_MB sizes the service's SQLite page cache (a negative
    cache_size is in KiB); SQLite's own default would be 2 MiB."""
    db = Database(database_url, sqlite_cache_mb=48)
    try:
        if not db.sqlite:
            pytest.skip("a SQLite setting")
        async with db.transaction() as tx:
            assert (await tx.execute(sa.text("PRAGMA cache_size"))).scalar() == -48 * 1024
    finally:
        await db.dispose()


async def test_sqlite_writes_deleted_bytes_nowhere_but_the_database(database_url: str) -> None:
    """A deleted row's bytes are overwritten in the database file (secure_delete), and
    what a statement changes is kept for its undo in memory (temp_store=MEMORY), not in
    a temporary file on disk, where an erased number's sealed bytes and blind index
    would be written and left behind in free disk space."""
    db = Database(database_url)
    try:
        if not db.sqlite:
            pytest.skip("SQLite settings")
        async with db.transaction() as tx:
            assert (await tx.execute(sa.text("PRAGMA secure_delete"))).scalar() == 1
            assert (await tx.execute(sa.text("PRAGMA temp_store"))).scalar() == 2  # MEMORY
    finally:
        await db.dispose()


async def test_a_failed_statement_names_no_value_it_was_given(db: Database) -> None:
    """An error's text (what a traceback or a log line shows) has the statement, never
    its values: they may be a sealed number, a blind index, a token's hash."""
    with pytest.raises(sa.exc.DBAPIError) as caught:
        async with db.transaction() as tx:
            await tx.execute(
                sa.text("SELECT x FROM no_such_table WHERE x = :v"), {"v": "value-0123456789"}
            )
    assert "no_such_table" in str(caught.value)
    assert "value-0123456789" not in str(caught.value)


class Partition:
    """A TCP relay to the PostgreSQL server that can hold back every byte, as a network
    partition does (the one thing faked here is the network)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = False
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self.frozen:
            await asyncio.sleep(0.02)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        asyncio.ensure_future(self._pipe(reader, upstream_writer))
        asyncio.ensure_future(self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while self.frozen:
                    await asyncio.sleep(0.02)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


async def test_locks_taken_together_are_all_held_until_the_unit_ends(db: Database) -> None:
    if db.sqlite:
        pytest.skip("SQLite's write lock serialises every unit")
    names = [f"subscriber:sub_{i}" for i in range(5)]
    taken = sa.text("SELECT pg_try_advisory_lock(:k)")
    with engine_for(db.url).connect() as other:

        def free(name: str) -> bool:
            got = bool(other.execute(taken, {"k": lock_key(name)}).scalar_one())
            if got:
                other.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
            return got

        async with db.transaction() as tx:
            await tx.lock_all(names)
            assert not any(free(name) for name in names)
            assert free("subscriber:sub_other")
        assert all(free(name) for name in names)


async def test_a_unit_cancelled_in_a_partition_leaves_no_half_begun_connection(
    database_url: str,
) -> None:
    """A readiness check gave up (its timeout) while its BEGIN was on the wire: the pooled
    connection went back looking idle, the BEGIN's answer arrived once the network healed,
    and the next unit's single-statement write ran inside that transaction, answered as
    done and was never committed. A unit cancelled or failed throws its connection away."""
    if Database(database_url).sqlite:
        pytest.skip("a PostgreSQL connection")
    url = sa.engine.make_url(database_url)
    partition = Partition((url.host or "127.0.0.1", url.port or 5432))
    port = await partition.start()
    db = Database(url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False))
    try:
        async with db.transaction() as tx:  # a pooled connection, idle
            await tx.execute(sa.text("SELECT 1"))
        partition.frozen = True
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5), db.transaction() as tx:
                await tx.execute(sa.text("SELECT 2"))  # BEGIN, then this: held back
        partition.frozen = False
        await asyncio.sleep(0.5)  # the held-back BEGIN reaches the server and is answered
        async with db.transaction() as tx:
            await tx.run_final(
                _INSERT,
                {"tag": "partition", "actor": "a", "subject": None, "at": NOW, "details": {}},
            )
        await db.dispose()
        assert written(Database(database_url), "partition") == ["a"]  # straight, not relayed
    finally:
        await db.dispose()
        assert partition.server is not None
        partition.server.close()
